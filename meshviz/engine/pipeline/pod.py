"""The engine's small facade: evidence text in, snapshot and traces out.

    result = load_snapshot(iptables=text, ip_rule=..., ip_route=..., sysctl=..., pod_ip="10.0.0.10")
    traces = trace(result.snapshot, packet, in_iface="eth0")

Whatever evidence is missing is replaced by the kernel's defaults and the
replacement is stated in `Snapshot.assumptions` (never a silent guess).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from meshviz.engine.core.errors import ParseError, ParseWarning
from meshviz.engine.core.model import Packet
from meshviz.engine.core.netaddr import split_host_port
from meshviz.engine.core.trace import Trace
from meshviz.engine.evidence.profile import PodProfile, derive_profile, pod_ip_from_evidence
from meshviz.engine.pipeline.checks import with_evidence_findings
from meshviz.engine.pipeline.parsecache import parse_once
from meshviz.engine.sim.connection import Endpoint
from meshviz.engine.sim.simulate import Sender, Simulation, explore, host_for
from meshviz.engine.sim.snapshot import Snapshot
from meshviz.engine.sim.sockets import SocketTable
from meshviz.engine.story.model import Story

if TYPE_CHECKING:
    from meshviz.engine.envoy.model import EnvoyConfig


def trace(
    snapshot: Snapshot,
    packet: Packet,
    *,
    in_iface: str | None = None,
    sender: Sender | None = None,
) -> list[Trace]:
    """Trace one packet: arriving on `in_iface`, or sent by a local `sender`.

    Returns one trace per branch of any `statistic` match on the way
    (a deterministic ruleset gives exactly one).
    """
    if (in_iface is None) == (sender is None):
        raise ValueError("give exactly one of in_iface (a received packet) or sender (a locally sent one)")
    host = host_for(snapshot)
    base = Simulation(host, SocketTable.of(snapshot.sockets))
    if in_iface is not None:
        iface = in_iface
        traces = explore(lambda sim: sim.receive(packet, iface), base)
    else:
        assert sender is not None
        s = sender
        traces = explore(lambda sim: sim.send(packet, s), base)
    return [replace(t, assumptions=snapshot.assumptions + t.assumptions) for t in traces]


@dataclass(frozen=True)
class Pod:
    """One pod's evidence, parsed once: the snapshot, Envoy's config and the profile derived from them."""

    snapshot: Snapshot
    envoy: EnvoyConfig | None
    profile: PodProfile | None  # None when the pod IP is unknown and the evidence does not give it
    assumptions: tuple[str, ...]
    errors: tuple[ParseError, ...]
    warnings: tuple[ParseWarning, ...]


def load_pod(
    *,
    iptables: str | None = None,
    ip_rule: str | None = None,
    ip_route: str | None = None,
    sysctl: str | None = None,
    envoy: str | None = None,
    ip6tables: str | None = None,
    ip6_rule: str | None = None,
    ip6_route: str | None = None,
    addr: str | None = None,
    nftables: str | None = None,
    pod_ip: str | None = None,
    proxy_uid: int | None = None,
    proxy_gid: int | None = None,
    proxy_net_admin: bool | None = None,
    app_ports: tuple[int, ...] = (),
    app_uid: int | None = None,
    app_gid: int | None = None,
    sources: dict[str, str] | None = None,
) -> Pod:
    """Parse every piece of evidence and derive the pod's profile (see meshviz.engine.evidence.profile)."""
    from meshviz.engine.envoy.parser import parse_config_dump

    config: EnvoyConfig | None = None
    errors: list[ParseError] = []
    warnings: list[ParseWarning] = []
    if envoy is not None:
        er = parse_config_dump(envoy, source=(sources or {}).get("envoy") or "envoy")
        errors += er.errors
        warnings += er.warnings
        config = er.config
    pod_addr = ipaddress.ip_address(pod_ip) if pod_ip else None
    if pod_addr is None and config is not None:
        pod_addr = pod_ip_from_evidence(Snapshot(), config)[0]

    parsed = parse_once(  # the same evidence is parsed once: every story, page and what-if of it shares the snapshot
        iptables=iptables,
        ip_rule=ip_rule,
        ip_route=ip_route,
        sysctl=sysctl,
        ip6tables=ip6tables,
        ip6_rule=ip6_rule,
        ip6_route=ip6_route,
        addr=addr,
        nftables=nftables,
        pod_ip=pod_addr,
        sources=sources,
    )
    loaded = parsed.loaded
    errors = list(loaded.errors) + errors
    warnings = list(loaded.warnings) + warnings
    assumptions = list(loaded.snapshot.assumptions)
    if envoy is None:
        assumptions.append("no Envoy config given: assuming Istio's standard sidecar listeners and clusters")
    # derived once per parse and arguments: it reads every rule (a node's 80,000, for each of an analysis' stories)
    profile_args = (pod_addr, proxy_uid, proxy_gid, proxy_net_admin, tuple(app_ports), app_uid, app_gid)
    profile = parsed.memo(
        ("profile", id(config), profile_args),
        lambda: derive_profile(
            loaded.snapshot,
            config,
            pod_ip=pod_addr,
            proxy_uid=proxy_uid,
            proxy_gid=proxy_gid,
            proxy_net_admin=proxy_net_admin,
            app_ports=app_ports,
            app_uid=app_uid,
            app_gid=app_gid,
        ),
        keep=config,
    )
    assumptions += profile.assumptions
    return Pod(
        loaded.snapshot,
        config,
        profile if profile.pod_ip is not None else None,
        tuple(assumptions),
        tuple(errors),
        tuple(warnings),
    )


@dataclass(frozen=True)
class StoryResult:
    story: Story | None
    errors: tuple[ParseError, ...]
    warnings: tuple[ParseWarning, ...]


def run_story(
    *,
    iptables: str | None = None,
    ip_rule: str | None = None,
    ip_route: str | None = None,
    sysctl: str | None = None,
    envoy: str | None = None,
    ip6tables: str | None = None,
    ip6_rule: str | None = None,
    ip6_route: str | None = None,
    addr: str | None = None,
    nftables: str | None = None,
    sources: dict[str, str] | None = None,
    pod_ip: str | None,
    proxy_uid: int | None = None,
    proxy_gid: int | None = None,
    proxy_net_admin: bool | None = None,
    direction: str = "inbound",
    client: str | None = None,
    port: int | None = None,
    dst: str | None = None,
    app_uid: int | None = None,
    app_gid: int | None = None,
    app_ports: tuple[int, ...] = (),
    client_tls: bool = False,
    dns_proxy: bool = True,
) -> StoryResult:
    """Parse the evidence and tell one connection's story (see meshviz.engine.story.build).

    direction: inbound (client -> pod `port`), outbound (the application connects to `dst`) or udp (a process of
    app_uid/app_gid sends one datagram to `dst`, e.g. a DNS query, and waits for the answer; `dns_proxy`: the
    sidecar's DNS proxy listens on 15053)."""
    from meshviz.engine.story.context import PodContext
    from meshviz.engine.story.inbound import inbound_story
    from meshviz.engine.story.outbound import outbound_story

    pod = load_pod(
        iptables=iptables,
        ip_rule=ip_rule,
        ip_route=ip_route,
        sysctl=sysctl,
        envoy=envoy,
        ip6tables=ip6tables,
        ip6_rule=ip6_rule,
        ip6_route=ip6_route,
        addr=addr,
        nftables=nftables,
        pod_ip=pod_ip,
        proxy_uid=proxy_uid,
        proxy_gid=proxy_gid,
        proxy_net_admin=proxy_net_admin,
        app_ports=app_ports,
        app_uid=app_uid,
        app_gid=app_gid,
        sources=sources,
    )
    if pod.errors:
        return StoryResult(None, pod.errors, pod.warnings)
    if pod.profile is None:
        raise ValueError(
            "the pod IP is not in the evidence (no Envoy node id, no single address in the routes): give it"
        )
    ctx = PodContext.of(pod.profile, client_tls=client_tls)
    facts = tuple(pod.profile.facts)
    host = host_for(pod.snapshot)
    if direction == "inbound":
        if client is None or port is None:
            raise ValueError("an inbound story needs client and port")
        caddr, cport = split_host_port(client)
        st = inbound_story(
            pod.snapshot, pod.envoy, ctx, Endpoint(caddr, cport or 40000), port, assumptions=pod.assumptions, host=host
        )
    elif direction == "udp":
        from meshviz.engine.story.udp import udp_story

        if dst is None:
            raise ValueError("a udp story needs dst")
        daddr, dport = split_host_port(dst)
        st = udp_story(
            pod.snapshot,
            ctx,
            Endpoint(daddr, dport or 53),
            uid=app_uid if app_uid is not None else ctx.app_uid,
            gid=app_gid if app_gid is not None else ctx.app_gid,
            dns_proxy=dns_proxy,
            assumptions=pod.assumptions,
            host=host,
        )
    else:
        if dst is None:
            raise ValueError("an outbound story needs dst")
        daddr, dport = split_host_port(dst)
        st = outbound_story(
            pod.snapshot,
            pod.envoy,
            ctx,
            Endpoint(daddr, dport or 80),
            app_uid=app_uid if app_uid is not None else ctx.app_uid,
            app_gid=app_gid if app_gid is not None else ctx.app_gid,
            assumptions=pod.assumptions,
            host=host,
        )
    st = replace(st, facts={**st.facts, "profile": pod.profile.to_dict(), "profile_facts": list(facts)})
    return StoryResult(with_evidence_findings(st, pod, port), pod.errors, pod.warnings)
