"""What the inbound and outbound stories share: the hop builder, the reading of kernel traces and the verdict's end."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from meshviz.engine.core.trace import Disposition, StepAction, StepKind, Trace
from meshviz.engine.sim.connection import ConnectionResult
from meshviz.engine.story.model import Failure, Finding, Story, StoryHop, Verdict

# --------------------------------------------------------------------------
# Inbound
# --------------------------------------------------------------------------


@dataclass
class _Builder:
    hops: list[StoryHop] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def hop(self, title: str, node: str, detail: str, trace: Trace | None = None, steps: tuple[str, ...] = ()) -> None:
        self.hops.append(StoryHop(title, node, detail, trace, steps))

    def find(self, kind: str, text: str, *refs: str) -> None:
        self.findings.append(Finding(kind, text, tuple(r for r in refs if r)))


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def _kernel_hops(b: _Builder, r: ConnectionResult, what: str, syn_title: str) -> None:
    if r.syn is not None:
        b.hop(syn_title, "pod-kernel", f"{what}: {r.syn.disposition.value} - {r.syn.detail}", trace=r.syn)
    if r.synack is not None:
        b.hop("SYN-ACK", "pod-kernel", f"the reply: {r.synack.disposition.value} - {r.synack.detail}", trace=r.synack)


def _reply_path(t: Trace | None) -> str | None:
    """How the reply (SYN-ACK) was routed, in one line: the last routing decision and where it ended."""
    if t is None:
        return None
    routes = [
        s.detail.split(" — ")[0]
        for s in t.steps()
        if s.kind == StepKind.ROUTING_LOOKUP and not s.detail.startswith("looped-back")
    ]
    end = {Disposition.EXITS_INTERFACE: f"leaves via {t.interface}", Disposition.ACCEPTED_TO_SOCKET: "back to Envoy"}
    return f"{routes[-1] if routes else 'no routing'}; {end.get(t.disposition, t.disposition.value)}"


def _rule_refs(t: Trace | None) -> tuple[str, ...]:
    if t is None:
        return ()
    return tuple(
        f"{s.table}/{s.chain} #{s.index}: {s.rule}"
        for s in t.rules_hit()
        if s.action not in (StepAction.JUMP, StepAction.GOTO)
    )


def _capture_rule(t: Trace | None) -> tuple[str, str]:
    """How the packet was captured: ('by nat REDIRECT in ISTIO_IN_REDIRECT', 'nat/ISTIO_IN_REDIRECT #1: ...')."""
    if t is None:
        return "", ""
    for s in t.steps():
        if s.kind != StepKind.RULE_MATCH or s.rule is None:
            continue
        if s.detail.startswith(("REDIRECT", "TPROXY")):
            kind = "TPROXY" if "TPROXY" in s.detail else "REDIRECT"
            return (
                f"by {s.table} {kind} ({s.table}/{s.chain} rule {s.index} at {s.hook})",
                f"{s.table}/{s.chain} #{s.index}: {s.rule}",
            )
    return "by the kernel delivering it to Envoy's listener", ""


def _failure_code(r: ConnectionResult) -> tuple[Failure, str | None]:
    """Why the connection failed, and the interface a leaving SYN-ACK took (REPLY_ESCAPES only)."""
    t = r.syn
    if r.outcome == "refused":
        return Failure.NO_LISTENER, None
    if t is not None and t.disposition in (Disposition.DROPPED, Disposition.REJECTED):
        return Failure.DROPPED, None
    if t is not None and t.disposition == Disposition.NO_ROUTE:
        return Failure.NO_ROUTE, None
    if t is not None and t.disposition == Disposition.UNSUPPORTED:
        return Failure.UNSUPPORTED, None
    if r.synack is not None and r.synack.disposition == Disposition.EXITS_INTERFACE:
        return Failure.REPLY_ESCAPES, r.synack.interface
    if r.synack is not None and r.synack.disposition in (Disposition.DROPPED, Disposition.REJECTED):
        return Failure.REPLY_DROPPED, None
    return (Failure.UPSTREAM_CONNECT_FAILURE if r.outcome == "error" else Failure.TIMEOUT), None


def _finish(direction: str, fields: dict[str, Any], b: _Builder, what: str) -> Story:
    verdict = Verdict(direction=direction, **fields)
    if direction == "inbound":
        peer = verdict.app_peer_ip
        if verdict.loop:
            summary = f"{what}: LOOP - Envoy's upstream connection is captured by Envoy again"
        elif verdict.failure:
            summary = f"{what}: fails ({verdict.failure_code})"
            would = verdict.app_would_see or peer
            if would:
                summary += f"; the application would see {would}"
        elif verdict.app_reached:
            summary = f"{what}: the application sees {peer}"
        else:
            summary = f"{what}: the application is not reached"
    elif direction == "udp":
        if verdict.failure:
            summary = f"{what}: fails ({verdict.failure_code})"
        else:
            summary = (
                f"{what}: {'captured, ' if verdict.intercepted else ''}received by {verdict.received_by} "
                f"from {verdict.receiver_peer_ip}; the answer comes from {verdict.reply_source}"
            )
    else:
        if verdict.loop:
            summary = f"{what}: LOOP"
        elif verdict.failure:
            summary = f"{what}: fails ({verdict.failure_code})"
        else:
            summary = (
                f"{what}: {'via Envoy, ' if verdict.intercepted else 'not intercepted, '}the destination "
                f"sees {verdict.destination_peer_ip}"
            )
    causes = [f for f in b.findings if f.kind == "cause"]
    if causes:
        summary += " - " + causes[-1].text
    return Story(direction, verdict, tuple(b.findings), tuple(b.hops), summary, dict(b.facts))
