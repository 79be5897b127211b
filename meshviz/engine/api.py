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

from meshviz.engine.addr_parser import parse_ip_addr
from meshviz.engine.connection import Endpoint
from meshviz.engine.errors import ParseError, ParseWarning
from meshviz.engine.iptables_parser import parse_iptables
from meshviz.engine.model import (
    Family,
    Interface,
    IPAddress,
    Packet,
    PolicyRule,
    Route,
    RoutingConfig,
    Ruleset,
    Snapshot,
    Socket,
    Sysctls,
)
from meshviz.engine.netaddr import split_host_port
from meshviz.engine.nftables.hooks import is_iptables_nft
from meshviz.engine.nftables.parser import parse_nftables
from meshviz.engine.profile import DEFAULT_POD_IFACE, PodProfile, derive_profile, pod_ip_from_evidence
from meshviz.engine.routing import default_policy_rules, default_routing, interfaces_from_routes, with_default_rules
from meshviz.engine.routing_parser import parse_ip_routes, parse_ip_rules
from meshviz.engine.simulate import Host, Sender, Simulation, explore
from meshviz.engine.sockets import SocketTable
from meshviz.engine.story import Story
from meshviz.engine.sysctl_parser import parse_sysctls
from meshviz.engine.trace import Trace

if TYPE_CHECKING:
    from meshviz.engine.envoy.model import EnvoyConfig


#: Each evidence kind and the `source` its errors name when the caller gives no file name.
EVIDENCE_SOURCES: dict[str, str] = {
    "iptables": "iptables",
    "ip6tables": "ip6tables",
    "nftables": "nftables",
    "ip_rule": "ip-rule",
    "ip6_rule": "ip6-rule",
    "ip_route": "ip-route",
    "ip6_route": "ip6-route",
    "addr": "ip-addr",
    "sysctl": "sysctl",
    "envoy": "envoy",
}


@dataclass(frozen=True)
class LoadResult:
    snapshot: Snapshot
    errors: tuple[ParseError, ...]
    warnings: tuple[ParseWarning, ...]

    @property
    def ok(self) -> bool:
        return not self.errors


def load_snapshot(
    iptables: str | None = None,
    ip_rule: str | None = None,
    ip_route: str | None = None,
    sysctl: str | None = None,
    *,
    ip6tables: str | None = None,
    ip6_rule: str | None = None,
    ip6_route: str | None = None,
    addr: str | None = None,
    nftables: str | None = None,
    pod_ip: str | IPAddress | None = None,
    sockets: tuple[Socket, ...] | None = None,
    sources: dict[str, str] | None = None,
    strict: bool = True,
) -> LoadResult:
    """Parse every piece of evidence given and assemble a Snapshot.

    IPv6 evidence comes beside the IPv4 one: `ip6tables` (ip6tables-save), `ip6_rule` (`ip -6 rule`) and
    `ip6_route` (`ip -6 route show table all`); `addr` is optional `ip -o addr` / `ip addr` output.  `nftables` is
    `nft list ruleset` (or `nft -j list ruleset`, or an `nft -f` script): its base chains run beside iptables'
    tables, interleaved by priority (meshviz.engine.nftables).
    """
    src = dict(EVIDENCE_SOURCES)
    src.update(sources or {})
    errors: list[ParseError] = []
    warnings: list[ParseWarning] = []
    assumptions: list[str] = []

    rulesets: tuple[Ruleset, ...] = ()
    if iptables is not None:
        r = parse_iptables(iptables, source=src["iptables"], strict=strict)
        rulesets = r.rulesets
        errors += r.errors
        warnings += r.warnings
    if ip6tables is not None:
        r6 = parse_iptables(ip6tables, source=src["ip6tables"], family=Family.IPV6, strict=strict)
        errors += r6.errors
        warnings += r6.warnings
        if any(rs.family == Family.IPV6 for rs in rulesets) and r6.rulesets:
            errors.append(
                ParseError(
                    src["ip6tables"],
                    1,
                    1,
                    ip6tables.strip().splitlines()[0] if ip6tables.strip() else "",
                    "IPv6 rules are given twice: in the iptables evidence and as ip6tables; give them once",
                )
            )
        rulesets = tuple(rs for rs in rulesets if rs.family == Family.IPV4) + tuple(r6.rulesets)
    nft = None
    if nftables is not None:
        nr = parse_nftables(nftables, source=src["nftables"])
        nft = nr.ruleset
        errors += nr.errors
        warnings += nr.warnings
        xt = [t.label for t in nft.tables if is_iptables_nft(t)]
        if xt and rulesets:  # as simulate.Host decides
            assumptions.append(
                f"the nft tables {', '.join(xt)} are iptables-nft's: simulated once, from the iptables-save "
                "evidence (their place in the listing gives their order on a hook)"
            )
    if iptables is None and ip6tables is None and nftables is None:
        assumptions.append("no iptables rules given: every chain is empty with policy ACCEPT")

    pod_addr = ipaddress.ip_address(str(pod_ip)) if pod_ip is not None else None

    routes: tuple[Route, ...] = ()
    table_names: tuple[tuple[str, int], ...] = ()
    for key, text, fam in (("ip_route", ip_route, None), ("ip6_route", ip6_route, Family.IPV6)):
        if text is None:
            continue
        rr = parse_ip_routes(text, source=src[key], family=fam)
        routes += rr.routes
        table_names += tuple(n for n in rr.table_names if n not in table_names)
        errors += rr.errors
        warnings += rr.warnings

    found: tuple[Interface, ...] = interfaces_from_routes(routes) if routes else ()
    prefixes: dict[IPAddress, int] = {}
    if addr is not None:
        ar = parse_ip_addr(addr, source=src["addr"])
        errors += ar.errors
        warnings += ar.warnings
        found = _merge_interfaces(ar.interfaces(), found)
        prefixes = ar.prefixes()
    interfaces = _ensure_interfaces(found, pod_addr, assumptions, have_routes=bool(routes) or addr is not None)
    have_v4_routes = ip_route is not None
    ip_route = ip_route if ip_route is not None or ip6_route is None else ""

    pod_iface = _pod_iface(interfaces, pod_addr)
    base = default_routing(interfaces, prefixes=prefixes, default_dev=pod_iface)
    if ip_route is None:
        routes = base.routes
        assumptions.append(
            "no ip route output given: assuming a fresh pod's tables (local routes for "
            + ", ".join(f"{a} on {i.name}" for i in interfaces for a in i.addresses)
            + f"; main: default route out of {pod_iface})"
        )
    else:
        for fam, given in ((Family.IPV4, have_v4_routes), (Family.IPV6, ip6_route is not None)):
            mine_routes = [r for r in routes if Family.of(r.dst) == fam]
            theirs = [r for r in base.routes if Family.of(r.dst) == fam]
            label = "ip route" if fam == Family.IPV4 else "ip -6 route"
            if not given:
                if fam == Family.IPV4 or any(a.version == 6 for i in interfaces if not i.loopback for a in i.addresses):
                    routes = tuple(routes) + tuple(theirs)
                    assumptions.append(
                        f"no {label} output given: assuming a fresh pod's {fam.value} tables "
                        f"(default route out of {pod_iface})"
                    )
                else:
                    routes = tuple(routes) + tuple(r for r in theirs if r.table == 255)
                continue
            if not any(r.table == 255 for r in mine_routes):
                routes = tuple(routes) + tuple(r for r in theirs if r.table == 255)
                assumptions.append(
                    f"the {label} output has no local table: adding the local routes of the interfaces "
                    "(use `show table all` to include it)"
                )
            if not any(r.table == 254 for r in mine_routes):
                routes = tuple(routes) + tuple(r for r in theirs if r.table == 254)
                assumptions.append(
                    f"the {label} input has no main table (only commands?): assuming a fresh pod's main table "
                    f"(default route out of {pod_iface})"
                )

    rules: tuple[PolicyRule, ...] = ()
    for key, text, fam in (("ip_rule", ip_rule, Family.IPV4), ("ip6_rule", ip6_rule, Family.IPV6)):
        label = "ip rule" if fam == Family.IPV4 else "ip -6 rule"
        if text is None:
            continue
        rp = parse_ip_rules(text, source=src[key], family=fam if fam == Family.IPV6 else None)
        errors += rp.errors
        warnings += rp.warnings
        got = rp.rules
        for f in (Family.IPV4, Family.IPV6):
            mine = tuple(r for r in got if r.family == f)
            if not mine:
                continue
            if not rp.has_listing:
                # Only `ip rule add ...` commands were given: they add to the kernel's default rules.
                mine = tuple(r for r in with_default_rules(mine) if r.family == f)
                assumptions.append(
                    f"the {label} input holds commands, not a listing: adding the kernel's default "
                    "rules (0 local, 32766 main, 32767 default)"
                )
            rules = tuple(r for r in rules if r.family != f) + mine
    for f, label in ((Family.IPV4, "ip rule"), (Family.IPV6, "ip -6 rule")):
        if not any(r.family == f for r in rules):
            rules += default_policy_rules(f)
            if f == Family.IPV4 or ip6tables is not None or ip6_route is not None:
                assumptions.append(
                    f"no {label} output given: assuming kernel defaults (0: lookup local, 32766: lookup main, "
                    "32767: lookup default)"
                )

    if sysctl is not None:
        sr = parse_sysctls(sysctl, source=src["sysctl"])
        sysctls = sr.sysctls
        errors += sr.errors
        warnings += sr.warnings
    else:
        sysctls = Sysctls()
        assumptions.append(
            "no sysctl output given: assuming kernel defaults (route_localnet=0, rp_filter=0, "
            "src_valid_mark=0, ip_forward=0); a new namespace copies the node's values, so give "
            "`sysctl -a` output to be sure"
        )

    snapshot = Snapshot(
        rulesets=rulesets,
        routing=RoutingConfig(rules=tuple(rules), routes=tuple(routes), table_names=table_names),
        sysctls=sysctls,
        interfaces=interfaces,
        sockets=sockets,
        assumptions=tuple(assumptions),
        nftables=nft,
    )
    return LoadResult(snapshot, tuple(errors), tuple(warnings))


def _merge_interfaces(from_addr: tuple[Interface, ...], from_routes: tuple[Interface, ...]) -> tuple[Interface, ...]:
    """`ip addr` is authoritative for addresses; devices only the routes name are kept too."""
    by_name = {i.name: i for i in from_addr}
    for i in from_routes:
        if i.name not in by_name:
            by_name[i.name] = i
        else:
            extra = tuple(a for a in i.addresses if a not in by_name[i.name].addresses)
            if extra:
                by_name[i.name] = replace(by_name[i.name], addresses=by_name[i.name].addresses + extra)
    return tuple(by_name.values())


def _pod_iface(interfaces: tuple[Interface, ...], pod_addr: IPAddress | None) -> str:
    """The interface that holds the pod IP; without one, the only non-loopback interface, else the default."""
    if pod_addr is not None:
        for i in interfaces:
            if pod_addr in i.addresses and not i.loopback:
                return i.name
    others = [i.name for i in interfaces if not i.loopback]
    return others[0] if len(others) == 1 else DEFAULT_POD_IFACE


def _ensure_interfaces(
    found: tuple[Interface, ...], pod_addr: IPAddress | None, assumptions: list[str], have_routes: bool
) -> tuple[Interface, ...]:
    by_name = {i.name: i for i in found}
    lo = by_name.get("lo")
    lo_addrs = tuple(lo.addresses) if lo else ()
    for a in ("127.0.0.1", "::1"):
        ip = ipaddress.ip_address(a)
        if ip not in lo_addrs:
            lo_addrs = (*lo_addrs, ip)
    by_name["lo"] = Interface("lo", lo_addrs, loopback=True)
    if pod_addr is not None and not any(pod_addr in i.addresses for i in by_name.values()):
        name = _pod_iface(tuple(by_name.values()), None)
        holder = by_name.get(name)
        addrs = (holder.addresses if holder else ()) + (pod_addr,)
        by_name[name] = Interface(name, addrs)
        if have_routes:
            others = [n for n, i in by_name.items() if not i.loopback]
            why = "the only interface they show" if len(others) == 1 and holder else "the default name"
            assumptions.append(f"the routes do not show the pod IP {pod_addr}: assuming it is on {name} ({why})")
        else:
            assumptions.append(f"no routes or addresses given: assuming the pod IP {pod_addr} is on {name}")
    if pod_addr is None and not any(not i.loopback for i in by_name.values()):
        by_name[DEFAULT_POD_IFACE] = Interface(DEFAULT_POD_IFACE, ())
        assumptions.append(f"the pod IP is unknown: {DEFAULT_POD_IFACE} has no address (give the pod IP)")
    order = ["lo", *sorted(n for n in by_name if n != "lo")]
    return tuple(by_name[n] for n in order)


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


_HOSTS: list[tuple[Snapshot, Host]] = []


def host_for(snapshot: Snapshot) -> Host:
    """The compiled Host for a snapshot, compiled once and kept for the last few snapshots."""
    for snap, host in _HOSTS:
        if snap is snapshot:
            return host
    host = Host(snapshot)
    _HOSTS.append((snapshot, host))
    del _HOSTS[:-8]
    return host


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
    """Parse every piece of evidence and derive the pod's profile (see meshviz.engine.profile)."""
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
    loaded = load_snapshot(
        iptables,
        ip_rule,
        ip_route,
        sysctl,
        ip6tables=ip6tables,
        ip6_rule=ip6_rule,
        ip6_route=ip6_route,
        addr=addr,
        nftables=nftables,
        pod_ip=pod_addr,
        sources=sources,
    )
    errors = list(loaded.errors) + errors
    warnings = list(loaded.warnings) + warnings
    assumptions = list(loaded.snapshot.assumptions)
    if envoy is None:
        assumptions.append("no Envoy config given: assuming Istio's standard sidecar listeners and clusters")
    profile = derive_profile(
        loaded.snapshot,
        config,
        pod_ip=pod_addr,
        proxy_uid=proxy_uid,
        proxy_gid=proxy_gid,
        proxy_net_admin=proxy_net_admin,
        app_ports=app_ports,
        app_uid=app_uid,
        app_gid=app_gid,
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
) -> StoryResult:
    """Parse the evidence and tell one connection's story (see meshviz.engine.story)."""
    from meshviz.engine.story import PodContext, inbound_story, outbound_story

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


def _short(cause: str) -> str:
    """A lead cause as the one-line verdict quotes it: up to Envoy's message, or the first sentence."""
    if cause.startswith("Envoy rejected"):
        return cause.split(": ", 1)[0]
    if cause.startswith("inconsistent evidence"):
        return cause.split(". ", 1)[0]
    return cause.split(":", 1)[0]


def with_evidence_findings(st: Story, pod: Pod, port: int | None) -> Story:
    """The story with what the evidence itself says put first (meshviz.engine.checks): a pod that is not a
    sidecar's, a capture listener Envoy rejected (the real cause of what the kernel then does), then the
    inconsistencies between the pieces of evidence.  The one-line summary leads with the real cause."""
    from meshviz.engine.checks import inconsistencies, rejected, scope
    from meshviz.engine.podspec import PodIdentity, identity_from_node
    from meshviz.engine.story import Finding

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
    failed = bool(st.verdict.get("failure")) or not sc.sidecar
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
