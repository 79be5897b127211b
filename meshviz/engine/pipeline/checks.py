"""What the evidence says before any packet is simulated: what kind of pod it is, what Envoy rejected, and where
the pieces of evidence contradict each other.

* `scope(pod)`: is this an Istio sidecar's evidence at all?  Ambient in-pod redirection (istio-cni's ambient
  chains, ztunnel's marks), rules without any Istio chain (kube-proxy, a CNI, Docker), a gateway's or a
  waypoint's config dump are named plainly; sidecar advice is not given for them.
* `rejected(pod)`: listeners and clusters Envoy rejected (`error_state`) or has not finished (warming), with
  Envoy's own message: a rejected capture listener is the real cause of whatever the kernel then does.
* `inconsistencies(pod, identity)`: the dump's interception mode against the rules, the dump's Istio version
  against the rules' shape, the dump's pod IP against the routes, excluded inbound ports that are the
  application's ports.

Each returns `Finding`s (kind `cause` or `warning`); `meshviz.engine.pipeline.pod.run_story` puts them in the story.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from meshviz.engine.evidence.podspec import ISTIO_PORT_RANGE, PodIdentity, identity_from_node, istio_minor
from meshviz.engine.evidence.profile import interception_mode
from meshviz.engine.netfilter.model import rule_dports
from meshviz.engine.nftables.profile import is_istio as nft_istio
from meshviz.engine.sim.snapshot import Snapshot
from meshviz.engine.story.model import Finding, Story

if TYPE_CHECKING:
    from meshviz.engine.envoy.model import EnvoyConfig
    from meshviz.engine.pipeline.pod import Pod

SIDECAR = "sidecar"
AMBIENT_INPOD = "ambient-inpod"
NO_ISTIO = "no-istio"
GATEWAY = "gateway"
WAYPOINT = "waypoint"


@dataclass(frozen=True)
class Scope:
    kind: str  # sidecar | ambient-inpod | no-istio | gateway | waypoint
    findings: tuple[Finding, ...] = ()

    @property
    def sidecar(self) -> bool:
        return self.kind == SIDECAR


def _chains(snapshot: Snapshot) -> set[str]:
    return {c.name for rs in snapshot.rulesets for t in rs.tables for c in t.chains}


def scope(snapshot: Snapshot, envoy: EnvoyConfig | None) -> Scope:
    chains = _chains(snapshot)
    node = (envoy.node_id or "") if envoy is not None else ""
    if node.startswith("waypoint~"):
        return Scope(
            WAYPOINT,
            (
                Finding(
                    "cause",
                    f"this Envoy config is a waypoint proxy's ({node.split('~')[2] if node.count('~') >= 2 else node}), "
                    "not a sidecar's: a waypoint is its own pod that ambient traffic is sent to, and no rules in the "
                    "application's pod send traffic to it; meshviz's connection story and fixes are for sidecar pods",
                ),
            ),
        )
    if node.startswith("router~"):
        return Scope(
            GATEWAY,
            (
                Finding(
                    "cause",
                    "this Envoy config is a gateway's (node type router), not a sidecar's: a gateway receives traffic "
                    "on its own ports without iptables interception; meshviz's connection story and fixes are for "
                    "sidecar pods",
                ),
            ),
        )
    if (
        nft_istio(snapshot.nftables) == "ambient"
        or "ISTIO_PRERT" in chains
        or any(c.startswith("ISTIO_") and "ztunnel" in c.lower() for c in chains)
    ):
        return Scope(
            AMBIENT_INPOD,
            (
                Finding(
                    "cause",
                    "these rules are Istio ambient's in-pod redirection (istio-cni's ISTIO_PRERT/ISTIO_OUTPUT chains "
                    "or its nftables tables inet istio-ambient-*, and ztunnel's marks), not a sidecar's: traffic is redirected to ztunnel's in-pod sockets "
                    "(15001, 15006, 15008), which ztunnel owns from the node; there is no sidecar Envoy to configure, "
                    "so meshviz gives no sidecar advice (no original_src EnvoyFilter, no fwmark policy route). "
                    "The packet path below is simulated as the rules say",
                ),
            ),
        )
    if nft_istio(snapshot.nftables) == "sidecar":
        return Scope(SIDECAR)
    if snapshot.rulesets and not any(c.startswith("ISTIO") for c in chains):
        return Scope(
            NO_ISTIO,
            (
                Finding(
                    "cause",
                    "these rules hold no Istio chain (ISTIO_INBOUND, ISTIO_OUTPUT, ...): they are not a sidecar pod's "
                    "(kube-proxy, a CNI or a container runtime wrote them), so nothing here intercepts traffic for "
                    "Envoy; meshviz gives no sidecar advice for them",
                ),
            ),
        )
    return Scope(SIDECAR)


def rejected(envoy: EnvoyConfig | None) -> tuple[Finding, ...]:
    """Listeners and clusters Envoy rejected or is still warming, with Envoy's own message."""
    if envoy is None:
        return ()
    out: list[Finding] = []
    seen: set[str] = set()
    active = {lst.name for lst in envoy.listeners if lst.state == "active"}
    for lst in envoy.listeners:
        port = lst.address.port if lst.address is not None else None
        where = f" (port {port})" if port is not None else ""
        if lst.state == "error":
            still = " The previous version is still active." if lst.name in active else ""
            out.append(
                Finding(
                    "cause",
                    f"Envoy rejected listener {lst.name}{where}: {(lst.error_detail or 'error_state').strip()}.{still}",
                    (f"listener {lst.name}",),
                )
            )
        elif lst.state == "warming":
            out.append(
                Finding(
                    "warning",
                    f"Envoy's listener {lst.name}{where} is still warming: it does not accept connections yet",
                    (f"listener {lst.name}",),
                )
            )
    out = [f for f in out if f.text not in seen and not seen.add(f.text)]  # type: ignore[func-returns-value]
    for c in envoy.clusters:
        state = getattr(c, "state", "active")
        if state == "error":
            out.append(Finding("cause", f"Envoy rejected cluster {c.name}", (f"cluster {c.name}",)))
        elif state == "warming":
            out.append(Finding("warning", f"Envoy's cluster {c.name} is still warming", (f"cluster {c.name}",)))
    return tuple(out)


def _has_inbound_passthrough_return(snapshot: Snapshot) -> bool:
    """Istio >= 1.10's rule letting Envoy's 127.0.0.6-bound upstream through: `-s 127.0.0.6/32 -o lo -j RETURN`."""
    for rs in snapshot.rulesets:
        nat = rs.table("nat")
        chain = nat.chain("ISTIO_OUTPUT") if nat else None
        for r in chain.rules if chain else ():
            if r.src is not None and not r.src.negated and str(r.src.network.network_address) in ("127.0.0.6", "::6"):
                return True
    return False


def inconsistencies(pod: Pod, identity: PodIdentity) -> tuple[Finding, ...]:
    out: list[Finding] = []
    snap, envoy, profile = pod.snapshot, pod.envoy, pod.profile
    rules_mode = interception_mode(snap)
    dump_mode = envoy.interception_mode if envoy is not None else None
    if dump_mode in ("REDIRECT", "TPROXY") and rules_mode in ("REDIRECT", "TPROXY") and dump_mode != rules_mode:
        out.append(
            Finding(
                "warning",
                f"inconsistent evidence: Envoy's node metadata says INTERCEPTION_MODE {dump_mode}, but the rules "
                f"intercept with {rules_mode}. Envoy was configured for {dump_mode} (its listeners "
                f"{'are not' if dump_mode == 'REDIRECT' else 'are'} transparent), so the two were not taken from the "
                "same pod or the pod's annotation changed after it started",
            )
        )
    version = istio_minor(identity.istio_version)
    if version is not None and snap.rulesets and rules_mode != "NONE":
        passthrough = _has_inbound_passthrough_return(snap)
        if version >= (1, 10) and not passthrough:
            out.append(
                Finding(
                    "warning",
                    f"inconsistent evidence: the dump is from Istio {identity.istio_version}, but the rules lack "
                    "the `-s 127.0.0.6/32 -o lo -j RETURN` rule every istio-iptables since 1.10 writes: the rules "
                    "look older than the proxy",
                )
            )
        elif version < (1, 10) and passthrough:
            out.append(
                Finding(
                    "warning",
                    f"inconsistent evidence: the dump is from Istio {identity.istio_version}, but the rules have "
                    "the 127.0.0.6 RETURN rule of Istio 1.10 and later: the rules look newer than the proxy",
                )
            )
    if identity.pod_ip and profile is not None and snap.interfaces:
        addrs = {str(a) for i in snap.interfaces for a in i.addresses}
        shown = any(not i.loopback and i.addresses for i in snap.interfaces)
        if shown and identity.pod_ip not in addrs:
            out.append(
                Finding(
                    "warning",
                    f"inconsistent evidence: Envoy's node id names pod IP {identity.pod_ip}, which none of the "
                    "pod's interfaces has in the routes: the dump and the routes may be from different pods",
                )
            )
    if profile is not None:
        excluded = _excluded_inbound_ports(snap)
        for port in profile.app_ports:
            if port in excluded and port not in ISTIO_PORT_RANGE:
                out.append(
                    Finding(
                        "warning",
                        f"port {port} is the application's, but the rules exclude it from inbound capture "
                        "(excludeInboundPorts): clients reach the application directly, without the sidecar",
                    )
                )
    return tuple(out)


def _excluded_inbound_ports(snapshot: Snapshot) -> set[int]:
    ports: set[int] = set()
    for rs in snapshot.rulesets:
        for table in ("nat", "mangle"):
            t = rs.table(table)
            chain = t.chain("ISTIO_INBOUND") if t else None
            for r in chain.rules if chain else ():
                if r.target is not None and r.target.name == "RETURN" and r.in_iface is None:
                    ports.update(rule_dports(r))
    return ports


def _short(cause: str) -> str:
    """A lead cause as the one-line verdict quotes it: up to Envoy's message, or the first sentence."""
    if cause.startswith("Envoy rejected"):
        return cause.split(": ", 1)[0]
    if cause.startswith("inconsistent evidence"):
        return cause.split(". ", 1)[0]
    return cause.split(":", 1)[0]


def with_evidence_findings(st: Story, pod: Pod, port: int | None) -> Story:
    """The story with what the evidence itself says put first (meshviz.engine.pipeline.checks): a pod that is not a
    sidecar's, a capture listener Envoy rejected (the real cause of what the kernel then does), then the
    inconsistencies between the pieces of evidence.  The one-line summary leads with the real cause."""
    identity = (
        identity_from_node(dict(pod.envoy.node_metadata), pod.envoy.node_id) if pod.envoy is not None else PodIdentity()
    )
    sc = scope(pod.snapshot, pod.envoy)
    ports = {p for p in (port, *(((pod.profile.inbound_port, pod.profile.outbound_port)) if pod.profile else ())) if p}
    rej = rejected(pod.envoy)
    relevant = tuple(
        f
        for f in rej
        if f.kind == "cause" and (any(f"(port {p})" in f.text for p in ports) or "listener virtual" in f.text)
    )
    failed = st.verdict.failure is not None or not sc.sidecar
    inc = inconsistencies(pod, identity)
    # When the connection fails, a dump configured for the other interception mode is the cause to fix first.
    mode_clash = tuple(replace(f, kind="cause") for f in inc if failed and "INTERCEPTION_MODE" in f.text)
    lead: tuple[Finding, ...] = (*sc.findings, *relevant, *mode_clash)
    rest = tuple(f for f in rej if f not in relevant) + tuple(
        f for f in inc if "INTERCEPTION_MODE" not in f.text or not failed
    )
    if not lead and not rest:
        return st
    summary = st.summary
    facts: dict[str, object] = {**st.facts, "scope": sc.kind}
    if lead and failed:
        summary = f"{st.summary.split(' - ')[0]} - {lead[0].text}"
        facts["evidence_cause"] = _short(lead[0].text)
    return replace(st, findings=(*lead, *st.findings, *rest), summary=summary, facts=facts)
