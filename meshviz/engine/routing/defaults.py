"""The kernel's defaults when `ip rule`/`ip route` evidence is missing: the three default policy rules, interfaces
read from routes, and a default routing table built from the pod's addresses (each stated as an assumption).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from meshviz.engine.core.model import Family, IPAddress, IPNetwork
from meshviz.engine.routing.flow import _V4_LOOPBACK, _V6_LOOPBACK, _whole
from meshviz.engine.routing.model import (
    TABLE_IDS,
    Interface,
    PolicyRule,
    Route,
    RouteType,
    RoutingConfig,
)

# --------------------------------------------------------------------------
# Defaults
# --------------------------------------------------------------------------


def default_policy_rules(family: Family) -> tuple[PolicyRule, ...]:
    """The rules every new namespace starts with."""
    rules = [
        PolicyRule(priority=0, table=TABLE_IDS["local"], table_name="local", family=family),
        PolicyRule(priority=32766, table=TABLE_IDS["main"], table_name="main", family=family),
    ]
    if family == Family.IPV4:
        rules.append(PolicyRule(priority=32767, table=TABLE_IDS["default"], table_name="default", family=family))
    return tuple(rules)


def _rule_key(rule: PolicyRule) -> PolicyRule:
    return replace(rule, ref=None, table_name=None)


def with_default_rules(rules: Sequence[PolicyRule]) -> tuple[PolicyRule, ...]:
    """`rules` plus the kernel's default rules it lacks (for input that only
    held `ip rule add ...` commands), in the kernel's order."""
    have = {_rule_key(r) for r in rules}
    merged = list(rules)
    for fam in (Family.IPV4, Family.IPV6):
        for d in default_policy_rules(fam):
            if _rule_key(d) not in have:
                merged.append(d)
    return tuple(sorted(merged, key=lambda r: (r.family != Family.IPV4, r.priority)))


def interfaces_from_routes(routes: Iterable[Route]) -> tuple[Interface, ...]:
    """Interfaces and their addresses as the routing tables reveal them.

    Each host-sized `local` route of the local table names an address of its
    device; addresses that are the `src` of a connected route come first
    (they are the primary ones).  Devices that only appear in routes are
    listed without addresses.  `lo` always exists with 127.0.0.1 and ::1.
    """
    # Devices in the order the kernel most likely created them: a listing
    # shows no ifindex, so take the main table's order first (the default
    # route's device leads), then the local table's, then the rest.
    routes = sorted(
        routes,
        key=lambda r: 0 if r.table == TABLE_IDS["main"] else 1 if r.table == TABLE_IDS["local"] else 2,
    )
    order: list[str] = ["lo"]
    addrs: dict[str, list[IPAddress]] = {"lo": []}
    primaries: set[tuple[str, IPAddress]] = set()
    for r in routes:
        if r.dev and r.dev not in addrs:
            order.append(r.dev)
            addrs[r.dev] = []
        if r.dev and r.src is not None and r.type == RouteType.UNICAST and r.table != TABLE_IDS["local"]:
            primaries.add((r.dev, r.src))
    for r in routes:
        if (
            r.table == TABLE_IDS["local"]
            and r.type == RouteType.LOCAL
            and r.dev
            and r.dst.prefixlen == r.dst.max_prefixlen
        ):
            a = r.dst.network_address
            if a not in addrs[r.dev]:
                addrs[r.dev].append(a)
    for must in (ipaddress.ip_address("127.0.0.1"), _V6_LOOPBACK):
        if must not in addrs["lo"]:
            addrs["lo"].append(must)
    result = []
    for name in order:
        lst = addrs[name]
        lst.sort(key=functools.partial(_address_order, name, primaries))
        result.append(Interface(name=name, addresses=tuple(lst), loopback=name == "lo"))
    return tuple(result)


def _address_order(dev: str, primaries: set[tuple[str, IPAddress]], a: IPAddress) -> tuple[int, bool]:
    return (a.version, (dev, a) not in primaries)


def default_routing(
    interfaces: Sequence[Interface],
    gateway: IPAddress | None = None,
    prefixes: Mapping[IPAddress, int] | None = None,
    default_dev: str | None = None,
) -> RoutingConfig:
    """What a fresh pod network namespace looks like.

    `prefixes` gives the prefix length of an address (10.80.0.10 -> 24) when
    known; an address with a known prefix gets its connected route (and, for
    IPv4, the subnet broadcast route).  The default route goes via `gateway`
    (with an on-link host route to it when no connected prefix covers it,
    Calico style) or, when the gateway is unknown, is `default dev DEV` out of `default_dev` (the pod's
    interface; the first non-loopback one when not given), for each family the interfaces have addresses of.
    """
    prefixes = dict(prefixes or {})
    local_t, main_t = TABLE_IDS["local"], TABLE_IDS["main"]
    routes: list[Route] = []
    ifaces = list(interfaces)
    if not any(i.name == "lo" for i in ifaces):
        ifaces.insert(0, Interface("lo", (ipaddress.ip_address("127.0.0.1"), _V6_LOOPBACK), True))
    connected: list[tuple[IPNetwork, str]] = []

    def add(**kw: Any) -> None:
        routes.append(Route(**kw))

    for iface in ifaces:
        if iface.loopback or iface.name == "lo":
            lo4 = next((a for a in iface.addresses if a.version == 4), ipaddress.ip_address("127.0.0.1"))
            add(
                table=local_t,
                type=RouteType.LOCAL,
                dst=_V4_LOOPBACK,
                dev=iface.name,
                src=lo4,
                scope="host",
                proto="kernel",
                table_name="local",
            )
        for a in iface.addresses:
            host = ipaddress.ip_network(a)
            if a.version == 4:
                if iface.loopback and a in _V4_LOOPBACK and a != lo4:
                    continue
                add(
                    table=local_t,
                    type=RouteType.LOCAL,
                    dst=host,
                    dev=iface.name,
                    src=a,
                    scope="host",
                    proto="kernel",
                    table_name="local",
                )
                plen = prefixes.get(a)
                if iface.loopback and a == lo4:
                    plen = 8
                if plen is not None and plen < 32:
                    net = ipaddress.ip_network(f"{a}/{plen}", strict=False)
                    if not iface.loopback:
                        add(
                            table=main_t,
                            type=RouteType.UNICAST,
                            dst=net,
                            dev=iface.name,
                            src=a,
                            scope="link",
                            proto="kernel",
                            table_name="main",
                        )
                        connected.append((net, iface.name))
                    if plen <= 30:
                        add(
                            table=local_t,
                            type=RouteType.BROADCAST,
                            dst=ipaddress.ip_network(net.broadcast_address),
                            dev=iface.name,
                            src=a,
                            scope="link",
                            proto="kernel",
                            table_name="local",
                        )
            else:
                add(table=local_t, type=RouteType.LOCAL, dst=host, dev=iface.name, proto="kernel", table_name="local")
                plen = prefixes.get(a)
                if plen is not None and plen < 128 and not iface.loopback:
                    net = ipaddress.ip_network(f"{a}/{plen}", strict=False)
                    add(
                        table=main_t,
                        type=RouteType.UNICAST,
                        dst=net,
                        dev=iface.name,
                        proto="kernel",
                        metric=256,
                        table_name="main",
                    )
                    connected.append((net, iface.name))
                if a.is_link_local and not iface.loopback:
                    add(
                        table=main_t,
                        type=RouteType.UNICAST,
                        dst=ipaddress.ip_network("fe80::/64"),
                        dev=iface.name,
                        proto="kernel",
                        metric=256,
                        table_name="main",
                    )

    others = [i for i in ifaces if not (i.loopback or i.name == "lo")]
    if others:
        if gateway is not None:
            dev = next((d for n, d in connected if gateway in n), None)
            if dev is None:
                dev = others[0].name
                add(
                    table=main_t,
                    type=RouteType.UNICAST,
                    dst=ipaddress.ip_network(gateway),
                    dev=dev,
                    scope="link",
                    table_name="main",
                )
            add(
                table=main_t,
                type=RouteType.UNICAST,
                dst=_whole(Family.of(gateway)),
                via=gateway,
                dev=dev,
                table_name="main",
            )
        else:
            names = [i.name for i in others]
            dev = default_dev if default_dev in names else names[0]
            holder = next(i for i in others if i.name == dev)
            fams = [Family.IPV4] + (
                [Family.IPV6] if any(a.version == 6 and not a.is_link_local for a in holder.addresses) else []
            )
            for fam in fams:
                add(
                    table=main_t,
                    type=RouteType.UNICAST,
                    dst=_whole(fam),
                    dev=dev,
                    scope="link" if fam == Family.IPV4 else None,
                    metric=1024 if fam == Family.IPV6 else 0,
                    table_name="main",
                )
    rules = default_policy_rules(Family.IPV4) + default_policy_rules(Family.IPV6)
    return RoutingConfig(rules=rules, routes=tuple(routes))
