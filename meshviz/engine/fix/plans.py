"""Generate a fix for a goal ("preserve-client-ip") and prove it by re-simulation.

A fix is a set of repairs.  Each repair changes the evidence (iptables rules,
ip rules/routes, sysctls, the Envoy config, the sidecar's identity) and comes
with the artifacts a user applies (kubectl patch, EnvoyFilter YAML, iptables
commands and an iptables-restore fragment, ip commands) and an explanation.

The repairs that could matter are applied together, the story is re-run on
the patched evidence, and then each repair is dropped in turn to keep only
those the goal really needs.  A fix is only offered as working when the
re-simulated verdict reaches the goal; the before/after verdicts are shown.
Alternatives that do not change what the application's socket sees
(X-Forwarded-For, PROXY protocol) are listed with their trade-offs, marked
unverified.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from meshviz.engine.core.errors import EngineInputError
from meshviz.engine.core.model import Family
from meshviz.engine.core.netaddr import split_host_port
from meshviz.engine.envoy.patch import upgrade_inbound_clusters
from meshviz.engine.fix.modes import mode_of
from meshviz.engine.fix.nft import backend_of
from meshviz.engine.fix.repairs import ALTERNATIVES, _dials_loopback, candidate_repairs
from meshviz.engine.fix.result import GOALS, Artifact, FixResult, Repair
from meshviz.engine.pipeline.evidence import Evidence, pod_of, story_for, with_identity
from meshviz.engine.story.model import Failure, Story

# --------------------------------------------------------------------------
# The fix
# --------------------------------------------------------------------------


def _apply_all(ev: Evidence, repairs: list[Repair]) -> Evidence:
    for r in repairs:
        ev = r.apply(ev)
    return ev


def _reaches_goal(story: Story, client_ip: str) -> bool:
    v = story.verdict
    return v.app_reached and v.app_peer_ip == client_ip and v.failure is None and not v.loop


def _scope(ev: Evidence) -> str | None:
    """Why sidecar repairs do not apply to this evidence (ambient, no Istio rules, a gateway/waypoint dump)."""
    from meshviz.engine.pipeline.checks import scope

    pod = pod_of(ev)
    sc = scope(pod.snapshot, pod.envoy)
    if sc.sidecar:
        return None
    return "no fix is offered: " + (sc.findings[0].text if sc.findings else sc.kind)


@dataclass
class Plan:
    """One way to reach the goal: repairs applied together, then re-simulated."""

    title: str
    repairs: list[Repair]


def _upgrade_repair(ev: Evidence) -> Repair:
    ns = f" -n {ev.namespace}" if ev.namespace else ""
    workload = ev.workload or "deployment/<your-workload>"
    return Repair(
        "upgrade-istio",
        "upgrade the sidecar to Istio 1.10 or later",
        "Before Istio 1.10 Envoy's inbound clusters dial the application on 127.0.0.1, so with original_src the "
        "application answers from 127.0.0.1 to the client's address, a loopback source the kernel will not route "
        "out of a pod interface. From 1.10 on, Envoy dials the pod IP (the connection's original destination). "
        "Upgrade the control plane, then restart the workload so its sidecar is injected anew.",
        lambda e: replace(e, envoy=upgrade_inbound_clusters(e.envoy).text) if e.envoy else e,
        (
            Artifact(
                "kubectl-patch",
                "after upgrading the control plane (istioctl upgrade, or your Helm/operator procedure), restart the "
                "workload so the new sidecar is injected",
                f"kubectl{ns} rollout restart {workload}",
            ),
        ),
    )


def _plans(ev: Evidence, fam: Family, notes: list[str]) -> list[Plan]:
    """The candidate plans, in the order they are tried: what the pod lacks as it is; for a REDIRECT pod
    whose Envoy (Istio < 1.10) dials 127.0.0.1, upgrading and then switching to TPROXY; switching to TPROXY with
    every repair the switched pod still lacks (original_src's mark, the MARK/CONNMARK rules, route_localnet)."""
    first, n = candidate_repairs(ev, fam)
    notes += n
    plans = [Plan(" + ".join(r.title for r in first) if first else "no repair", first)]
    if mode_of(ev) == "REDIRECT" and first:
        switch = first[0]
        if _dials_loopback(ev):
            up = _upgrade_repair(ev)
            plans.append(Plan("upgrade to Istio >= 1.10, then TPROXY", [up, switch]))
        try:
            more, _ = candidate_repairs(switch.apply(ev), fam)
        except (ValueError, EngineInputError):
            more = []  # the switch itself cannot be applied: its own plan already says why
        if more:
            plans.append(Plan("TPROXY with every repair the switched pod still lacks", [switch, *more]))
    return plans


def _minimise(
    ev: Evidence, repairs: list[Repair], client: str, port: int, client_ip: str, tls: bool
) -> tuple[list[Repair], list[str]]:
    kept = list(repairs)
    dropped: list[str] = []
    if len(kept) > 1:
        for r in list(repairs):
            trial = [k for k in kept if k is not r]
            if _reaches_goal(story_for(_apply_all(ev, trial), client=client, port=port, client_tls=tls), client_ip):
                kept = trial
                dropped.append(f"{r.title}: the goal is reached without it")
    return kept, dropped


def fix(
    ev: Evidence, *, client: str, port: int, goal: str = "preserve-client-ip", client_tls: bool = False
) -> FixResult:
    if goal not in GOALS:
        raise ValueError(f"unknown goal {goal!r}; known: {', '.join(GOALS)}")
    client_ip = str(split_host_port(client)[0])
    ev = with_identity(ev)
    backend = backend_of(ev)
    tls = client_tls
    before = story_for(ev, client=client, port=port, client_tls=tls)
    notes: list[str] = []
    if not tls and before.verdict.failure is Failure.DOWNSTREAM_TLS_REQUIRED:
        # The pod accepts only mTLS: only meshed clients reach it at all, so the goal is theirs.
        tls = True
        before = story_for(ev, client=client, port=port, client_tls=tls)
        notes.append(
            "the pod's inbound listener requires mutual TLS, so plaintext clients never reach the application: the "
            "fix is for a meshed client (one whose sidecar speaks mTLS)"
        )
    diagnosis = [f.to_dict() for f in before.findings if f.kind != "assumption"]
    if _reaches_goal(before, client_ip):
        return FixResult(
            goal,
            client,
            port,
            diagnosis,
            before.verdict.to_dict(),
            before.verdict.to_dict(),
            True,
            [],
            [],
            ALTERNATIVES,
            None,
            before.summary,
            [*notes, "the goal is already met: nothing to change"],
            backend=backend,
        )

    def no_fix(tried: list[dict[str, Any]] | None = None) -> FixResult:
        """The result when no repair is offered: the diagnosis, the notes saying why, the plans tried."""
        return FixResult(
            goal,
            client,
            port,
            diagnosis,
            before.verdict.to_dict(),
            None,
            False,
            [],
            [],
            ALTERNATIVES,
            None,
            "",
            notes,
            tried or [],
            backend=backend,
        )

    fam = Family.IPV6 if ":" in client_ip else Family.IPV4
    scope = _scope(ev)
    if scope is not None:
        notes.append(scope)
        return no_fix()
    tried: list[dict[str, Any]] = []
    chosen: tuple[list[Repair], Evidence, Story] | None = None
    for plan in _plans(ev, fam, notes):
        if not plan.repairs:
            continue
        try:
            trial = _apply_all(ev, plan.repairs)
            after = story_for(trial, client=client, port=port, client_tls=tls)
        except (ValueError, EngineInputError) as exc:
            tried.append({"plan": plan.title, "works": False, "why": f"cannot be applied: {exc}"})
            continue
        ok = _reaches_goal(after, client_ip)
        tried.append(
            {
                "plan": plan.title,
                "repairs": [r.key for r in plan.repairs],
                "works": ok,
                "after": after.verdict.to_dict(),
                "why": "the re-simulated connection reaches the goal" if ok else after.summary,
            }
        )
        if ok:
            chosen = (plan.repairs, trial, after)
            break
    if chosen is None:
        notes.append(
            "meshviz found no fix its re-simulation proves: " + "; ".join(f"{t['plan']}: {t['why']}" for t in tried)
            if tried
            else "meshviz found no repair it can verify for this configuration"
        )
        return no_fix(tried)
    repairs, dropped = _minimise(ev, chosen[0], client, port, client_ip, tls)
    patched = _apply_all(ev, repairs)
    after = story_for(patched, client=client, port=port, client_tls=tls)
    works = _reaches_goal(after, client_ip)
    return FixResult(
        goal,
        client,
        port,
        diagnosis,
        before.verdict.to_dict(),
        after.verdict.to_dict(),
        works,
        repairs,
        dropped,
        ALTERNATIVES,
        patched,
        after.summary,
        notes,
        tried,
        backend=backend,
    )
