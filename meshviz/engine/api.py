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

from meshviz.engine.connection import Endpoint
from meshviz.engine.errors import ParseError, ParseWarning
from meshviz.engine.iptables_parser import parse_iptables
from meshviz.engine.model import (
    Family,
    Interface,
    IPAddress,
    Packet,
    Route,
    RoutingConfig,
    Ruleset,
    Snapshot,
    Socket,
    Sysctls,
)
from meshviz.engine.netaddr import split_host_port
from meshviz.engine.routing import default_policy_rules, default_routing, interfaces_from_routes, with_default_rules
from meshviz.engine.routing_parser import parse_ip_routes, parse_ip_rules
from meshviz.engine.simulate import Host, Sender, Simulation, explore
from meshviz.engine.sockets import SocketTable
from meshviz.engine.sysctl_parser import parse_sysctls
from meshviz.engine.trace import Trace

if TYPE_CHECKING:
    from meshviz.engine.story import Story


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
    pod_ip: str | IPAddress | None = None,
    sockets: tuple[Socket, ...] | None = None,
    sources: dict[str, str] | None = None,
    strict: bool = True,
) -> LoadResult:
    """Parse every piece of evidence given and assemble a Snapshot."""
    src = {"iptables": "iptables", "ip_rule": "ip-rule", "ip_route": "ip-route", "sysctl": "sysctl"}
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
    else:
        assumptions.append("no iptables rules given: every chain is empty with policy ACCEPT")

    pod_addr = ipaddress.ip_address(str(pod_ip)) if pod_ip is not None else None

    routes: tuple[Route, ...] = ()
    table_names: tuple[tuple[str, int], ...] = ()
    if ip_route is not None:
        rr = parse_ip_routes(ip_route, source=src["ip_route"])
        routes, table_names = rr.routes, rr.table_names
        errors += rr.errors
        warnings += rr.warnings

    found: tuple[Interface, ...] = interfaces_from_routes(routes) if routes else ()
    interfaces = _ensure_interfaces(found, pod_addr, assumptions, have_routes=bool(routes))

    if ip_route is None:
        base = default_routing(interfaces)
        routes = base.routes
        assumptions.append(
            "no ip route output given: assuming a fresh pod's tables (local routes for "
            + ", ".join(f"{a} on {i.name}" for i in interfaces for a in i.addresses)
            + "; main: default route out of eth0)"
        )
    else:
        base = default_routing(interfaces)
        if not any(r.table == 255 for r in routes):
            routes = tuple(routes) + tuple(r for r in base.routes if r.table == 255)
            assumptions.append(
                "the ip route output has no local table: adding the local routes of the interfaces "
                "(use `ip route show table all` to include it)"
            )
        if not any(r.table == 254 for r in routes):
            routes = tuple(routes) + tuple(r for r in base.routes if r.table == 254)
            assumptions.append(
                "the ip route input has no main table (only commands?): assuming a fresh pod's main table "
                "(default route out of eth0)"
            )

    if ip_rule is not None:
        rp = parse_ip_rules(ip_rule, source=src["ip_rule"])
        rules = rp.rules
        if not rp.has_listing:
            # Only `ip rule add ...` commands were given: they add to the kernel's default rules.
            rules = with_default_rules(rules)
            assumptions.append(
                "the ip rule input holds commands, not a listing: adding the kernel's default "
                "rules (0 local, 32766 main, 32767 default)"
            )
        errors += rp.errors
        warnings += rp.warnings
    else:
        rules = default_policy_rules(Family.IPV4) + default_policy_rules(Family.IPV6)
        assumptions.append(
            "no ip rule output given: assuming kernel defaults (0: lookup local, 32766: lookup main, "
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
    )
    return LoadResult(snapshot, tuple(errors), tuple(warnings))


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
        eth0 = by_name.get("eth0")
        addrs = (eth0.addresses if eth0 else ()) + (pod_addr,)
        by_name["eth0"] = Interface("eth0", addrs)
        if have_routes:
            assumptions.append(f"the routes do not show the pod IP {pod_addr}: assuming it is on eth0")
    if "eth0" not in by_name and pod_addr is None:
        by_name["eth0"] = Interface("eth0", ())
        assumptions.append("the pod IP is unknown: eth0 has no address (give --pod-ip)")
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
class StoryResult:
    story: Story | None
    errors: tuple[ParseError, ...]
    warnings: tuple[ParseWarning, ...]


def run_story(
    *,
    iptables: str | None,
    ip_rule: str | None = None,
    ip_route: str | None = None,
    sysctl: str | None = None,
    envoy: str | None = None,
    sources: dict[str, str] | None = None,
    pod_ip: str,
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
    from meshviz.engine.envoy.parser import parse_config_dump
    from meshviz.engine.story import PodContext, inbound_story, outbound_story, proxy_identity

    loaded = load_snapshot(iptables, ip_rule, ip_route, sysctl, pod_ip=pod_ip, sources=sources)
    errors = list(loaded.errors)
    warnings = list(loaded.warnings)
    config = None
    assumptions = list(loaded.snapshot.assumptions)
    if envoy is not None:
        er = parse_config_dump(envoy, source=(sources or {}).get("envoy") or "envoy")
        errors += er.errors
        warnings += er.warnings
        config = er.config
    else:
        assumptions.append("no Envoy config given: assuming Istio's standard sidecar listeners and clusters")
    if errors:
        return StoryResult(None, tuple(errors), tuple(warnings))
    uid, gid, net_admin, notes = proxy_identity(config, loaded.snapshot, proxy_uid, proxy_gid)
    assumptions += notes
    if proxy_net_admin is not None:
        net_admin = proxy_net_admin
    pod_addr = ipaddress.ip_address(pod_ip)
    ctx = PodContext(
        pod_ip=pod_addr,
        proxy_uid=uid,
        proxy_gid=gid,
        proxy_net_admin=net_admin,
        app_uid=app_uid if app_uid is not None else 1000,
        app_gid=app_gid if app_gid is not None else 1000,
        app_ports=app_ports,
        client_tls=client_tls,
    )
    if direction == "inbound":
        if client is None or port is None:
            raise ValueError("an inbound story needs client and port")
        caddr, cport = split_host_port(client)
        st = inbound_story(
            loaded.snapshot, config, ctx, Endpoint(caddr, cport or 40000), port, assumptions=tuple(assumptions)
        )
    else:
        if dst is None or app_uid is None or app_gid is None:
            raise ValueError("an outbound story needs dst, app_uid and app_gid")
        daddr, dport = split_host_port(dst)
        st = outbound_story(
            loaded.snapshot,
            config,
            ctx,
            Endpoint(daddr, dport or 80),
            app_uid=app_uid,
            app_gid=app_gid,
            assumptions=tuple(assumptions),
        )
    return StoryResult(st, tuple(errors), tuple(warnings))
