"""The input path (ip_route_input_noref / ip6_route_input): received packets, source validation (rp_filter,
route_localnet, martians), local delivery or forwarding, IPv4 and IPv6.
"""

from __future__ import annotations

from dataclasses import replace

from meshviz.engine.core.model import Family, IPAddress
from meshviz.engine.routing.fib import (
    _conf_default,
    _decision_from_fib,
    _Fib,
    _forwarding,
    _index,
    _key,
    _net,
    _route_localnet,
    _walk,
)
from meshviz.engine.routing.flow import (
    _V4_ANY,
    _V4_LBCAST,
    _V4_LOOPBACK,
    _V4_MULTICAST,
    _V4_ZERONET,
    _V6_LOOPBACK,
    ERRNO_OF,
    Flow,
    RouteDecision,
    _hex,
    _table_label,
    render_route,
)
from meshviz.engine.routing.model import (
    RouteType,
    RoutingState,
)

# --------------------------------------------------------------------------
# Input
# --------------------------------------------------------------------------


def _validate_source(
    snapshot: RoutingState,
    src: IPAddress,
    dst: IPAddress | None,
    flow: Flow,
    dev: str,
    oif: str | None,
    why: list[str],
) -> str | None:
    """fib_validate_source: None when the source is acceptable, else an error code."""
    sysctls = snapshot.sysctls
    idx = _index(snapshot.routing)
    net = _net(snapshot)
    rpf = sysctls.conf(dev, "rp_filter")
    accept_local = bool(sysctls.conf(dev, "accept_local"))
    tx_redirects = bool(_conf_default(sysctls, dev, "send_redirects", 1))
    if rpf == 0 and (oif != dev or not tx_redirects):
        if accept_local:
            why.append(f"source check: rp_filter=0 and accept_local=1 on {dev}: accepted")
            return None
        if not (idx.custom_rules_v4 or idx.custom_local_routes_v4):
            if src in net.owner:
                why.append(
                    f"source {src} is one of this host's own addresses and accept_local=0 on {dev}: "
                    "martian source (EINVAL)"
                )
                return "MARTIAN_SOURCE"
            why.append(f"source check: rp_filter=0 on {dev}, {src} is not a local address: accepted")
            return None
    mode = {0: "off", 1: "strict", 2: "loose"}.get(rpf, "loose")
    mark = flow.mark if sysctls.conf(dev, "src_valid_mark") else 0
    rev_flow = Flow(
        dst=src,
        src=dst if dst is not None and dst != _V4_ANY else None,
        mark=mark,
        protocol=flow.protocol,
        sport=flow.dport,
        dport=flow.sport,
        tos=flow.tos,
    )
    k = replace(_key(rev_flow, Family.IPV4, output=False), iif=oif or "lo")
    rev_why: list[str] = []
    fib = _walk(idx, k, rev_why, snapshot.routing.table_names)
    marknote = f" with mark {_hex(mark)}" if mark else (" (mark ignored: src_valid_mark=0)" if flow.mark else "")
    intro = f"reverse-path check (rp_filter={rpf}, {mode}): route back to {src}{marknote}"
    if not fib.ok:
        if rpf:
            why.append(f"{intro}: none ({fib.error}): reverse-path filter drops the packet")
            return "RP_FILTER"
        why.append(f"{intro}: none, accepted since rp_filter=0")
        return None
    route = fib.route
    assert route is not None
    if route.type != RouteType.UNICAST and (route.type != RouteType.LOCAL or not accept_local):
        why.append(
            f"{intro}: `{render_route(route)}` is a {route.type.value} route: "
            f"{src} is {'this host' if route.type == RouteType.LOCAL else 'not a unicast source'}"
            " (martian source, accept_local=0)"
        )
        return "MARTIAN_SOURCE"
    dev_match = route.dev == dev or (route.type == RouteType.LOCAL and dev == "lo")
    if dev_match:
        why.append(f"{intro}: `{render_route(route)}` uses {dev}: accepted")
        return None
    iface = net.by_name.get(dev)
    if iface is None or not any(a.version == 4 for a in iface.addresses):
        if rpf:
            why.append(f"{intro}: {dev} has no IPv4 address: reverse-path filter drops the packet")
            return "RP_FILTER"
        why.append(f"{intro}: accepted ({dev} has no IPv4 address, rp_filter=0)")
        return None
    if rpf == 1:
        why.append(
            f"{intro}: `{render_route(route)}` leaves by {route.dev}, not {dev}: strict "
            "reverse-path filter drops the packet"
        )
        return "RP_FILTER"
    why.append(f"{intro}: `{render_route(route)}`: accepted")
    return None


def route_input(snapshot: RoutingState, flow: Flow) -> RouteDecision:
    """Route a packet received on `flow.iif` (ip_route_input_slow)."""
    if flow.iif is None:
        return RouteDecision(
            ok=False, error="EINVAL", explanation=("an input lookup needs the receiving device (iif)",)
        )
    if flow.family == Family.IPV6:
        return _route_input_v6(snapshot, flow)
    config = snapshot.routing
    idx = _index(config)
    net = _net(snapshot)
    sysctls = snapshot.sysctls
    dev = flow.iif
    why: list[str] = [f"input lookup for {flow.describe()}"]
    src = flow.src if flow.src is not None else _V4_ANY
    dst = flow.dst

    def fail(code: str, message: str, fib: _Fib | None = None) -> RouteDecision:
        why.append(message)
        return RouteDecision(
            ok=False,
            error=code,
            rule=fib.rule if fib else None,
            route=fib.route if fib else None,
            table=fib.table if fib else None,
            type=fib.route.type if fib and fib.route else None,
            explanation=tuple(why),
        )

    if dev not in net.by_name:
        return fail("ENODEV", f"iif {dev}: no such device (ENODEV)")
    if dst in _V4_MULTICAST:
        return fail(
            "EINVAL",
            f"{dst} is multicast: accepted only if a socket joined the group on {dev}; "
            "multicast input is not simulated",
        )
    if src in _V4_MULTICAST or src == _V4_LBCAST:
        return fail("MARTIAN_SOURCE", f"source {src} is multicast/broadcast: martian source (EINVAL)")
    if dst == _V4_LBCAST or (src == _V4_ANY and dst == _V4_ANY):
        return _brd_input(snapshot, flow, src, dev, why)
    if src in _V4_ZERONET:
        return fail("MARTIAN_SOURCE", f"source {src} is in 0.0.0.0/8: martian source (EINVAL)")
    if dst in _V4_ZERONET:
        return fail("MARTIAN_DESTINATION", f"destination {dst} is in 0.0.0.0/8: martian destination (EINVAL)")
    if dst in _V4_LOOPBACK:
        if not _route_localnet(sysctls, dev):
            return fail(
                "MARTIAN_DESTINATION",
                f"destination {dst} is a loopback address arriving on {dev}: martian destination "
                f"unless route_localnet=1 on {dev} (EINVAL)",
            )
        why.append(f"loopback destination {dst} on {dev} allowed: route_localnet=1")
    elif src in _V4_LOOPBACK:
        if not _route_localnet(sysctls, dev):
            return fail(
                "MARTIAN_SOURCE",
                f"source {src} is a loopback address arriving on {dev}: martian source "
                f"unless route_localnet=1 on {dev} (EINVAL)",
            )
        why.append(f"loopback source {src} on {dev} allowed: route_localnet=1")

    k = _key(flow, Family.IPV4, output=False)
    fib = _walk(idx, k, why, config.table_names)
    forwarding = _forwarding(sysctls, dev, Family.IPV4)
    if not fib.ok:
        if not forwarding:
            return fail(
                "FORWARDING_DISABLED",
                f"not for this host and forwarding is disabled on {dev} "
                "(net.ipv4.ip_forward=0): the kernel answers EHOSTUNREACH",
                fib,
            )
        why.append(f"the packet is dropped ({ERRNO_OF.get(fib.error or '', fib.error)})")
        return _decision_from_fib(fib, why)
    route = fib.route
    assert route is not None
    if route.type == RouteType.BROADCAST:
        return _brd_input(snapshot, flow, src, dev, why, fib)
    if route.type == RouteType.LOCAL:
        err = _validate_source(snapshot, src, dst, flow, dev, None, why)
        if err is not None:
            return RouteDecision(
                ok=False,
                error=err,
                rule=fib.rule,
                route=route,
                table=fib.table,
                type=route.type,
                explanation=tuple(why),
            )
        why.append(f"result: local delivery (input via lo), table {_table_label(fib.table or 0, config.table_names)}")
        return RouteDecision(
            ok=True,
            type=RouteType.LOCAL,
            dev="lo",
            rule=fib.rule,
            route=route,
            table=fib.table,
            explanation=tuple(why),
        )
    if not forwarding:
        return fail(
            "FORWARDING_DISABLED",
            f"{dst} is not a local address and forwarding is disabled on {dev} "
            "(net.ipv4.ip_forward=0): dropped, the kernel answers EHOSTUNREACH",
            fib,
        )
    if route.type != RouteType.UNICAST:
        return fail(
            "MARTIAN_DESTINATION",
            f"a {route.type.value} route cannot forward: martian destination (EINVAL)",
            fib,
        )
    out_dev = route.dev or dev
    err = _validate_source(snapshot, src, dst, flow, dev, out_dev, why)
    if err is not None:
        return RouteDecision(
            ok=False,
            error=err,
            rule=fib.rule,
            route=route,
            table=fib.table,
            type=route.type,
            explanation=tuple(why),
        )
    why.append("result: forwarded" + (f" via {route.via}" if route.via else "") + f" dev {out_dev}")
    return RouteDecision(
        ok=True,
        type=RouteType.UNICAST,
        dev=out_dev,
        gateway=route.via,
        rule=fib.rule,
        route=route,
        table=fib.table,
        explanation=tuple(why),
    )


def _brd_input(
    snapshot: RoutingState, flow: Flow, src: IPAddress, dev: str, why: list[str], fib: _Fib | None = None
) -> RouteDecision:
    if src not in _V4_ZERONET:
        err = _validate_source(snapshot, src, None, flow, dev, None, why)
        if err is not None:
            return RouteDecision(ok=False, error=err, explanation=tuple(why))
    why.append("result: broadcast, delivered locally")
    return RouteDecision(
        ok=True,
        type=RouteType.BROADCAST,
        dev="lo",
        rule=fib.rule if fib else None,
        route=fib.route if fib else None,
        table=fib.table if fib else None,
        explanation=tuple(why),
    )


def _route_input_v6(snapshot: RoutingState, flow: Flow) -> RouteDecision:
    config = snapshot.routing
    idx = _index(config)
    net = _net(snapshot)
    dev = flow.iif or "lo"
    why: list[str] = [f"IPv6 input lookup for {flow.describe()}"]
    if dev not in net.by_name:
        why.append(f"iif {dev}: no such device (ENODEV)")
        return RouteDecision(ok=False, error="ENODEV", explanation=tuple(why))
    iface = net.by_name[dev]
    if not (iface.loopback or dev == "lo"):
        if flow.dst == _V6_LOOPBACK:
            why.append(f"destination ::1 arriving on {dev}: martian destination, dropped")
            return RouteDecision(ok=False, error="MARTIAN_DESTINATION", explanation=tuple(why))
        if flow.src == _V6_LOOPBACK:
            why.append(f"source ::1 arriving on {dev}: martian source, dropped")
            return RouteDecision(ok=False, error="MARTIAN_SOURCE", explanation=tuple(why))
    k = _key(flow, Family.IPV6, output=False)
    fib = _walk(idx, k, why, config.table_names)
    if not fib.ok:
        return _decision_from_fib(fib, why)
    route = fib.route
    assert route is not None
    if route.type == RouteType.LOCAL:
        why.append("result: local delivery")
        return RouteDecision(
            ok=True,
            type=RouteType.LOCAL,
            dev="lo",
            rule=fib.rule,
            route=route,
            table=fib.table,
            explanation=tuple(why),
        )
    if not _forwarding(snapshot.sysctls, dev, Family.IPV6):
        why.append("not for this host and net.ipv6.conf.all.forwarding=0: dropped")
        return RouteDecision(
            ok=False,
            error="FORWARDING_DISABLED",
            rule=fib.rule,
            route=route,
            table=fib.table,
            explanation=tuple(why),
        )
    why.append("result: forwarded" + (f" via {route.via}" if route.via else "") + f" dev {route.dev}")
    return RouteDecision(
        ok=True,
        type=route.type,
        dev=route.dev,
        gateway=route.via,
        rule=fib.rule,
        route=route,
        table=fib.table,
        explanation=tuple(why),
    )
