"""The output path (ip_route_output_key / ip6_route_output): locally generated packets, IPv4 and IPv6."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

from meshviz.engine.core.model import Family, IPAddress
from meshviz.engine.routing.fib import (
    _decision_from_fib,
    _Fib,
    _index,
    _is_local_v4,
    _key,
    _net,
    _route_localnet,
    _select_addr_v4,
    _select_addr_v6,
    _walk,
)
from meshviz.engine.routing.flow import (
    _V4_ANY,
    _V4_LBCAST,
    _V4_LOCAL_MULTICAST,
    _V4_LOOPBACK,
    _V4_MULTICAST,
    _V4_ZERONET,
    _V6_ANY,
    RT_SCOPE_LINK,
    RT_SCOPE_UNIVERSE,
    Flow,
    RouteDecision,
    _scope_of,
)
from meshviz.engine.routing.model import (
    PolicyRule,
    Route,
    RouteType,
    RoutingState,
)

# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------


def route_output(snapshot: RoutingState, flow: Flow) -> RouteDecision:
    """Route a locally generated packet (ip_route_output_key)."""
    if flow.family == Family.IPV6:
        return _route_output_v6(snapshot, flow)
    config = snapshot.routing
    idx = _index(config)
    net = _net(snapshot)
    sysctls = snapshot.sysctls
    names = config.table_names
    why: list[str] = [f"output lookup for {flow.describe()} (locally generated: iif lo)"]
    src = flow.src if flow.src is not None and flow.src != _V4_ANY else None
    dst = flow.dst

    def fail(code: str, message: str, fib: _Fib | None = None) -> RouteDecision:
        why.append(message)
        return RouteDecision(
            ok=False,
            error=code,
            rule=fib.rule if fib else None,
            route=fib.route if fib else None,
            table=fib.table if fib else None,
            explanation=tuple(why),
        )

    if src is not None:
        if src in _V4_MULTICAST or src == _V4_LBCAST or src in _V4_ZERONET:
            return fail("EINVAL", f"source {src} is a multicast, broadcast or zeronet address (EINVAL)")
        if flow.oif is None and (dst in _V4_MULTICAST or dst == _V4_LBCAST):
            owner = net.owner.get(src)
            if owner is None and not flow.nonlocal_src_ok:
                return fail(
                    "ENETUNREACH",
                    f"source {src} is not a local address, needed to pick the device for "
                    f"multicast/broadcast {dst} (ENETUNREACH)",
                )
            return _make_output(snapshot, flow, why, RouteType.BROADCAST, owner or "lo", src, None, None, None, None)
        if not flow.nonlocal_src_ok and not _is_local_v4(net, idx, src):
            return fail(
                "ENETUNREACH",
                f"source {src} is not a local address and the socket is not transparent "
                "(IP_TRANSPARENT/IP_FREEBIND): the kernel refuses the route (ENETUNREACH)",
            )
        if flow.nonlocal_src_ok and not _is_local_v4(net, idx, src):
            why.append(f"source {src} is not local, allowed for a transparent socket")

    oif_dev: str | None = None
    if flow.oif is not None:
        if flow.oif not in net.by_name:
            return fail("ENODEV", f"oif {flow.oif}: no such device (ENODEV)")
        oif_dev = flow.oif
        if dst in _V4_LOCAL_MULTICAST or dst == _V4_LBCAST:
            if src is None:
                src, _ = _select_addr_v4(net, sysctls, oif_dev, None, RT_SCOPE_LINK)
            why.append(f"{dst} is link-local multicast/broadcast: sent on oif {oif_dev}")
            return _make_output(snapshot, flow, why, RouteType.UNICAST, oif_dev, src, None, None, None, None)
        if src is None and dst in _V4_MULTICAST:
            src, _ = _select_addr_v4(net, sysctls, oif_dev, None, RT_SCOPE_UNIVERSE)

    if dst == _V4_ANY:
        dst2 = src or ipaddress.ip_address("127.0.0.1")
        why.append(f"destination 0.0.0.0 means this host: local delivery to {dst2} via lo")
        return _make_output(
            snapshot, replace(flow, dst=dst2), why, RouteType.LOCAL, "lo", src or dst2, None, None, None, None
        )

    k = _key(replace(flow, src=src), Family.IPV4, output=True)
    fib = _walk(idx, k, why, names)
    if not fib.ok:
        if oif_dev is not None:
            if src is None:
                src, swhy = _select_addr_v4(net, sysctls, oif_dev, None, RT_SCOPE_LINK)
            why.append(
                f"the lookup failed ({fib.error}), but the socket is bound to {oif_dev}: the kernel "
                f"then assumes {dst} is on-link and sends it out {oif_dev}"
            )
            return _make_output(snapshot, flow, why, RouteType.UNICAST, oif_dev, src, None, None, None, None)
        return _decision_from_fib(fib, why)
    route = fib.route
    assert route is not None
    if route.type == RouteType.LOCAL:
        if src is None:
            src = route.src or dst
            why.append(
                f"local route: delivered via lo; source {src} "
                + ("(the route's src)" if route.src else "(the destination itself)")
            )
        else:
            why.append("local route: delivered via lo")
        return _make_output(snapshot, flow, why, RouteType.LOCAL, "lo", src, None, route, fib.rule, fib.table)
    dev = route.dev or oif_dev or "lo"
    if src is None:
        if route.src is not None:
            src = route.src
            why.append(f"source {src}: the route's preferred source (src)")
        else:
            src, swhy = _select_addr_v4(net, sysctls, dev, route.via, _scope_of(route))
            why.append(f"source {src}: {swhy}" if src else f"source: {swhy}")
    return _make_output(snapshot, flow, why, route.type, dev, src, route.via, route, fib.rule, fib.table)


def _make_output(
    snapshot: RoutingState,
    flow: Flow,
    why: list[str],
    rtype: RouteType,
    dev: str,
    src: IPAddress | None,
    gateway: IPAddress | None,
    route: Route | None,
    rule: PolicyRule | None,
    table: int | None,
) -> RouteDecision:
    """__mkroute_output's checks."""
    net = _net(snapshot)
    iface = net.by_name.get(dev)
    loopback = dev == "lo" or (iface is not None and iface.loopback)
    if src is not None and src in _V4_LOOPBACK and not loopback:
        if not _route_localnet(snapshot.sysctls, dev):
            why.append(
                f"source {src} is a loopback address and dev {dev} is not loopback: the kernel "
                "refuses this route unless route_localnet=1 (EINVAL)"
            )
            return RouteDecision(
                ok=False,
                error="EINVAL",
                dev=dev,
                src=src,
                rule=rule,
                route=route,
                table=table,
                type=rtype,
                explanation=tuple(why),
            )
        why.append(f"loopback source {src} out of {dev} is allowed: route_localnet=1")
    dst = flow.dst
    if dst == _V4_LBCAST:
        rtype = RouteType.BROADCAST
    elif dst in _V4_MULTICAST:
        rtype = RouteType.MULTICAST
    elif dst in _V4_ZERONET:
        why.append(f"destination {dst} is in 0.0.0.0/8 (EINVAL)")
        return RouteDecision(ok=False, error="EINVAL", explanation=tuple(why))
    summary = f"result: {rtype.value}" + (f" via {gateway}" if gateway else "") + f" dev {dev}"
    if src is not None:
        summary += f" src {src}"
    why.append(summary)
    return RouteDecision(
        ok=True,
        type=rtype,
        dev=dev,
        src=src,
        gateway=gateway,
        rule=rule,
        route=route,
        table=table,
        explanation=tuple(why),
    )


def _route_output_v6(snapshot: RoutingState, flow: Flow) -> RouteDecision:
    config = snapshot.routing
    idx = _index(config)
    net = _net(snapshot)
    why: list[str] = [f"IPv6 output lookup for {flow.describe()} (iif lo)"]
    src = flow.src if flow.src is not None and flow.src != _V6_ANY else None
    k = _key(replace(flow, src=src), Family.IPV6, output=True)
    if flow.oif is not None and flow.oif not in net.by_name:
        why.append(f"oif {flow.oif}: no such device (ENODEV)")
        return RouteDecision(ok=False, error="ENODEV", explanation=tuple(why))
    fib = _walk(idx, k, why, config.table_names)
    if not fib.ok:
        return _decision_from_fib(fib, why)
    route = fib.route
    assert route is not None
    if route.type == RouteType.LOCAL:
        dev = "lo"
        if src is None:
            src = route.src or _select_addr_v6(net, "lo", flow.dst) or flow.dst
    else:
        dev = route.dev or "lo"
        if src is None:
            src = route.src or _select_addr_v6(net, dev, flow.dst)
    why.append(f"result: {route.type.value}" + (f" via {route.via}" if route.via else "") + f" dev {dev}")
    return RouteDecision(
        ok=True,
        type=route.type,
        dev=dev,
        src=src,
        gateway=route.via,
        rule=fib.rule,
        route=route,
        table=fib.table,
        explanation=tuple(why),
    )
