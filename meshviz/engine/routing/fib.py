"""The kernel's route lookups: policy rules, tables, and the checks around them.

This follows Linux's IPv4 routing code closely (fib_rules.c, fib_trie.c,
route.c, fib_frontend.c) and was checked against a real kernel with
`ip route get` (tests/kernel/test_route_get_oracle.py):

* `fib_lookup`: the policy-rule walk.  Rules are tried in priority order;
  a rule matches when all its selectors match (`not` inverts the whole
  rule); `goto` jumps to the first rule with exactly that priority, `nop`
  does nothing, `blackhole`/`unreachable`/`prohibit` end the lookup with an
  error, `lookup T` does a longest-prefix match in table T: no match or a
  `throw` route continues with the next rule, as does a result whose prefix
  is not longer than `suppress_prefixlength`.  Output lookups carry
  iif=lo, so `ip rule ... iif lo` matches locally generated traffic; input
  lookups carry uid 0 (the namespace owner), so `uidrange 0-0` matches them.
* `route_output`: ip_route_output_key semantics (source checks, `local`
  routes delivered via lo, preferred source selection, the loopback-source
  check of __mkroute_output).
* `route_input`: ip_route_input_slow semantics (martians, local delivery,
  forwarding, reverse-path validation).

Every decision carries an ordered, human-readable explanation.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from meshviz.engine.core.model import Family, IPAddress, IPNetwork
from meshviz.engine.core.names import protocol_number
from meshviz.engine.routing.model import (
    TABLE_IDS,
    Interface,
    PolicyRule,
    Route,
    RouteType,
    RoutingConfig,
    RoutingState,
    RuleAction,
    Sysctls,
)

__all__ = [
    "ERRNO_OF",
    "Flow",
    "RouteDecision",
    "default_policy_rules",
    "default_routing",
    "fib_lookup",
    "interfaces_from_routes",
    "render_route",
    "render_rule",
    "route_input",
    "route_output",
    "with_default_rules",
]

# --------------------------------------------------------------------------
# Public data
# --------------------------------------------------------------------------

#: What `ip route get` answers (the errno) for each decision error code.
#: Kernels from 6.13 on report every input-path drop reason (martian source,
#: reverse-path failure) as EINVAL; older kernels said EXDEV for RP_FILTER.
ERRNO_OF: dict[str, str] = {
    "ENETUNREACH": "ENETUNREACH",
    "EHOSTUNREACH": "EHOSTUNREACH",
    "EINVAL": "EINVAL",
    "EACCES": "EACCES",
    "ENODEV": "ENODEV",
    "BLACKHOLE": "EINVAL",
    "MARTIAN_SOURCE": "EINVAL",
    "MARTIAN_DESTINATION": "EINVAL",
    "FORWARDING_DISABLED": "EHOSTUNREACH",
    "RP_FILTER": "EINVAL",
}


@dataclass(frozen=True)
class Flow:
    """What a route lookup is asked about.

    `iif` set means an input lookup (a packet received on that device);
    `oif` restricts an output lookup to a device (SO_BINDTODEVICE, `ip route
    get ... oif`).  `uid` is the socket owner for output lookups (None: no
    socket, which the kernel treats as uid 0).  `nonlocal_src_ok` is what an
    IP_TRANSPARENT or IP_FREEBIND socket gets: its source need not be local.
    """

    dst: IPAddress
    src: IPAddress | None = None
    mark: int = 0
    iif: str | None = None
    oif: str | None = None
    uid: int | None = None
    protocol: str | int | None = None
    sport: int = 0
    dport: int = 0
    tos: int = 0
    nonlocal_src_ok: bool = False

    @property
    def family(self) -> Family:
        return Family.of(self.dst)

    def describe(self) -> str:
        parts = [str(self.dst)]
        if self.src is not None:
            parts.append(f"from {self.src}")
        if self.iif:
            parts.append(f"iif {self.iif}")
        if self.oif:
            parts.append(f"oif {self.oif}")
        if self.mark:
            parts.append(f"mark {_hex(self.mark)}")
        if self.uid is not None and not self.iif:
            parts.append(f"uid {self.uid}")
        if self.protocol is not None:
            parts.append(f"ipproto {self.protocol}")
        if self.sport:
            parts.append(f"sport {self.sport}")
        if self.dport:
            parts.append(f"dport {self.dport}")
        if self.tos:
            parts.append(f"tos {_hex(self.tos)}")
        return " ".join(parts)


@dataclass(frozen=True)
class RouteDecision:
    """The outcome of a lookup: a route (ok) or the kernel's refusal (error)."""

    ok: bool
    type: RouteType | None = None
    dev: str | None = None
    src: IPAddress | None = None
    gateway: IPAddress | None = None
    rule: PolicyRule | None = None
    route: Route | None = None
    table: int | None = None
    error: str | None = None
    explanation: tuple[str, ...] = ()

    @property
    def errno(self) -> str | None:
        """The errno `ip route get` prints for this decision (None when ok)."""
        if self.error is None:
            return None
        return ERRNO_OF.get(self.error, self.error)

    @property
    def local(self) -> bool:
        """Delivered to this host (a local or broadcast route)."""
        return self.ok and self.type in (RouteType.LOCAL, RouteType.BROADCAST)

    def describe(self) -> str:
        if not self.ok:
            return f"refused: {self.error}"
        parts = [self.type.value if self.type else "?"]
        if self.gateway is not None:
            parts.append(f"via {self.gateway}")
        if self.dev:
            parts.append(f"dev {self.dev}")
        if self.table is not None:
            parts.append(f"table {_table_label(self.table)}")
        if self.src is not None:
            parts.append(f"src {self.src}")
        return " ".join(parts)


# --------------------------------------------------------------------------
# Constants and small helpers
# --------------------------------------------------------------------------

RT_SCOPE_UNIVERSE = 0
RT_SCOPE_SITE = 200
RT_SCOPE_LINK = 253
RT_SCOPE_HOST = 254
RT_SCOPE_NOWHERE = 255
_SCOPES = {
    "global": RT_SCOPE_UNIVERSE,
    "universe": RT_SCOPE_UNIVERSE,
    "site": RT_SCOPE_SITE,
    "link": RT_SCOPE_LINK,
    "host": RT_SCOPE_HOST,
    "nowhere": RT_SCOPE_NOWHERE,
}

_V4_LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
_V4_ZERONET = ipaddress.ip_network("0.0.0.0/8")
_V4_MULTICAST = ipaddress.ip_network("224.0.0.0/4")
_V4_LOCAL_MULTICAST = ipaddress.ip_network("224.0.0.0/24")
_V4_LBCAST = ipaddress.ip_address("255.255.255.255")
_V4_ANY = ipaddress.ip_address("0.0.0.0")
_V6_ANY = ipaddress.ip_address("::")
_V6_LOOPBACK = ipaddress.ip_address("::1")

_ERROR_ROUTE_CODES: dict[RouteType, str] = {
    RouteType.BLACKHOLE: "BLACKHOLE",
    RouteType.UNREACHABLE: "EHOSTUNREACH",
    RouteType.PROHIBIT: "EACCES",
    RouteType.NAT: "EINVAL",
}
_ERROR_RULE_CODES: dict[RuleAction, str] = {
    RuleAction.BLACKHOLE: "BLACKHOLE",
    RuleAction.UNREACHABLE: "ENETUNREACH",
    RuleAction.PROHIBIT: "EACCES",
}


def _hex(v: int) -> str:
    return f"0x{v:x}"


def _proto_num(p: str | int | None) -> int | None:
    return None if p is None else protocol_number(p)


def _table_label(table: int, names: Iterable[tuple[str, int]] = ()) -> str:
    for name, tid in names:
        if tid == table:
            return name
    for name, tid in TABLE_IDS.items():
        if tid == table:
            return name
    return str(table)


def _scope_of(route: Route) -> int:
    if route.scope is None:
        return RT_SCOPE_HOST if route.type == RouteType.LOCAL else RT_SCOPE_UNIVERSE
    if route.scope in _SCOPES:
        return _SCOPES[route.scope]
    try:
        return int(route.scope, 0)
    except ValueError:
        return RT_SCOPE_UNIVERSE


def _whole(family: Family) -> IPNetwork:
    return ipaddress.ip_network("::/0" if family == Family.IPV6 else "0.0.0.0/0")


def _is_v4(a: IPAddress) -> bool:
    return a.version == 4


def render_rule(rule: PolicyRule, names: Iterable[tuple[str, int]] = ()) -> str:
    """A rule as `ip rule list` prints it: `32765:\tfrom all fwmark 0x539 lookup 133`."""
    parts: list[str] = []
    if rule.not_:
        parts.append("not")
    parts.append(f"from {rule.src if rule.src is not None else 'all'}")
    if rule.dst is not None:
        parts.append(f"to {rule.dst}")
    if rule.tos:
        parts.append(f"tos {_hex(rule.tos)}")
    if rule.fwmark is not None:
        mark = _hex(rule.fwmark)
        if rule.fwmask != 0xFFFFFFFF:
            mark += f"/{_hex(rule.fwmask)}"
        parts.append(f"fwmark {mark}")
    if rule.iif:
        parts.append(f"iif {rule.iif}")
    if rule.oif:
        parts.append(f"oif {rule.oif}")
    if rule.uidrange is not None:
        parts.append(f"uidrange {rule.uidrange[0]}-{rule.uidrange[1]}")
    if rule.ipproto:
        parts.append(f"ipproto {rule.ipproto}")
    for name, rng in (("sport", rule.sport), ("dport", rule.dport)):
        if rng is not None:
            parts.append(f"{name} {rng[0]}" if rng[0] == rng[1] else f"{name} {rng[0]}-{rng[1]}")
    if rule.action == RuleAction.LOOKUP:
        label = rule.table_name or _table_label(rule.table or 0, names)
        parts.append(f"lookup {label}")
        if rule.suppress_prefixlength is not None:
            parts.append(f"suppress_prefixlength {rule.suppress_prefixlength}")
    elif rule.action == RuleAction.GOTO:
        parts.append(f"goto {rule.goto}")
    else:
        parts.append(rule.action.value)
    return f"{rule.priority}:\t" + " ".join(parts)


def render_route(route: Route, names: Iterable[tuple[str, int]] = ()) -> str:
    """A route as `ip route show table all` prints it."""
    parts: list[str] = []
    if route.type != RouteType.UNICAST:
        parts.append(route.type.value)
    parts.append("default" if route.dst.prefixlen == 0 else _net_text(route.dst))
    if route.via is not None:
        parts.append(f"via {route.via}")
    if route.dev:
        parts.append(f"dev {route.dev}")
    if route.table != TABLE_IDS["main"]:
        parts.append(f"table {route.table_name or _table_label(route.table, names)}")
    if route.proto:
        parts.append(f"proto {route.proto}")
    if route.scope and route.scope not in ("global", "universe"):
        parts.append(f"scope {route.scope}")
    if route.src is not None:
        parts.append(f"src {route.src}")
    if route.metric:
        parts.append(f"metric {route.metric}")
    return " ".join(parts)


def _net_text(net: IPNetwork) -> str:
    if net.prefixlen == net.max_prefixlen:
        return str(net.network_address)
    return str(net)


def _rule_text(rule: PolicyRule) -> str:
    return render_rule(rule).replace(":\t", ": ", 1)


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


# --------------------------------------------------------------------------
# Indexes (built once per RoutingConfig / RoutingState object)
# --------------------------------------------------------------------------


@dataclass
class _Index:
    rules: dict[Family, tuple[PolicyRule, ...]]
    tables: dict[tuple[int, Family], tuple[Route, ...]]
    custom_rules_v4: bool
    custom_local_routes_v4: bool


_INDEX_CACHE: dict[int, tuple[object, object]] = {}
_CACHE_LIMIT = 64


def _cached(obj: object, build: object) -> object:
    hit = _INDEX_CACHE.get(id(obj))
    if hit is not None and hit[0] is obj:
        return hit[1]
    value = build() if callable(build) else build
    if len(_INDEX_CACHE) >= _CACHE_LIMIT:
        _INDEX_CACHE.pop(next(iter(_INDEX_CACHE)))
    _INDEX_CACHE[id(obj)] = (obj, value)
    return value


def _build_index(config: RoutingConfig) -> _Index:
    rules: dict[Family, tuple[PolicyRule, ...]] = {}
    for fam in (Family.IPV4, Family.IPV6):
        own = [r for r in config.rules if r.family == fam]
        rules[fam] = tuple(sorted(own, key=lambda r: r.priority)) if own else default_policy_rules(fam)
    buckets: dict[tuple[int, Family], list[Route]] = {}
    for r in config.routes:
        buckets.setdefault((r.table, Family.of(r.dst)), []).append(r)
    tables = {k: tuple(sorted(v, key=lambda r: (-r.dst.prefixlen, r.metric))) for k, v in buckets.items()}
    defaults = {_rule_key(r) for r in default_policy_rules(Family.IPV4)}
    custom_rules = any(_rule_key(r) not in defaults for r in rules[Family.IPV4])
    custom_local = any(r.type == RouteType.LOCAL and r.proto != "kernel" and r.dst.version == 4 for r in config.routes)
    return _Index(rules, tables, custom_rules, custom_local)


def _index(config: RoutingConfig) -> _Index:
    idx = _cached(config, lambda: _build_index(config))
    assert isinstance(idx, _Index)
    return idx


@dataclass
class _Net:
    """Interface facts for source selection and martian checks."""

    ifaces: tuple[Interface, ...]
    by_name: dict[str, Interface]
    owner: dict[IPAddress, str]
    prefix: dict[tuple[str, IPAddress], IPNetwork]
    secondary: set[tuple[str, IPAddress]] = field(default_factory=set)


def _build_net(snapshot: RoutingState) -> _Net:
    base = list(snapshot.interfaces) or list(interfaces_from_routes(snapshot.routing.routes))
    if not any(i.name == "lo" for i in base):
        base.insert(0, Interface("lo", (ipaddress.ip_address("127.0.0.1"), _V6_LOOPBACK), True))
    # lo first, as in the kernel's device list.
    ifaces = tuple(sorted(base, key=lambda i: not (i.loopback or i.name == "lo")))
    by_name = {i.name: i for i in ifaces}
    owner: dict[IPAddress, str] = {}
    for i in ifaces:
        for a in i.addresses:
            owner.setdefault(a, i.name)
    prefix: dict[tuple[str, IPAddress], IPNetwork] = {}
    for r in snapshot.routing.routes:
        if r.type != RouteType.UNICAST or not r.dev or r.via is not None:
            continue
        if r.table == TABLE_IDS["local"] or r.dst.prefixlen == 0:
            continue
        iface = by_name.get(r.dev)
        if iface is None:
            continue
        for a in iface.addresses:
            if a.version != r.dst.version or a not in r.dst:
                continue
            if r.src is not None and r.src != a and r.proto == "kernel":
                continue
            old = prefix.get((r.dev, a))
            if old is None or (r.proto == "kernel" and r.src == a):
                prefix[(r.dev, a)] = r.dst
    if any(i.loopback or i.name == "lo" for i in ifaces):
        lo = next(i for i in ifaces if i.loopback or i.name == "lo")
        for a in lo.addresses:
            if a in _V4_LOOPBACK:
                prefix.setdefault((lo.name, a), _V4_LOOPBACK)
    secondary: set[tuple[str, IPAddress]] = set()
    for i in ifaces:
        seen: list[IPNetwork] = []
        for a in i.addresses:
            net = prefix.get((i.name, a))
            if net is not None and any(a in n for n in seen):
                secondary.add((i.name, a))
            if net is not None:
                seen.append(net)
    return _Net(ifaces, by_name, owner, prefix, secondary)


def _net(snapshot: RoutingState) -> _Net:
    n = _cached(snapshot, lambda: _build_net(snapshot))
    assert isinstance(n, _Net)
    return n


# --------------------------------------------------------------------------
# The policy-rule walk
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Key:
    family: Family
    dst: IPAddress
    src: IPAddress | None
    mark: int
    iif: str
    oif: str | None
    uid: int
    proto: int | None
    sport: int
    dport: int
    tos: int


def _rule_mismatch(rule: PolicyRule, k: _Key) -> str | None:
    """Why `rule`'s selectors do not match (None: they match), before `not`."""
    if rule.iif is not None and rule.iif != k.iif:
        return f"iif {k.iif} is not {rule.iif}"
    if rule.oif is not None and rule.oif != k.oif:
        return f"oif {k.oif or '(none)'} is not {rule.oif}"
    if rule.fwmark is not None and (rule.fwmark ^ k.mark) & rule.fwmask:
        mask = "" if rule.fwmask == 0xFFFFFFFF else f"/{_hex(rule.fwmask)}"
        return f"mark {_hex(k.mark)} does not match {_hex(rule.fwmark)}{mask}"
    if rule.uidrange is not None and not rule.uidrange[0] <= k.uid <= rule.uidrange[1]:
        return f"uid {k.uid} is outside {rule.uidrange[0]}-{rule.uidrange[1]}"
    if rule.src is not None:
        if k.src is None:
            if k.family == Family.IPV6 and rule.src.prefixlen > 0:
                return "the lookup has no source address yet"
            if k.family == Family.IPV4 and _V4_ANY not in rule.src:
                return "the lookup has no source address yet (0.0.0.0)"
        elif k.src.version != rule.src.version or k.src not in rule.src:
            return f"source {k.src} is not in {rule.src}"
    if rule.dst is not None and (k.dst.version != rule.dst.version or k.dst not in rule.dst):
        return f"destination {k.dst} is not in {rule.dst}"
    if rule.tos and rule.tos != k.tos:
        return f"tos {_hex(k.tos)} is not {_hex(rule.tos)}"
    if rule.ipproto is not None and _proto_num(rule.ipproto) != k.proto:
        return f"protocol is not {rule.ipproto}"
    if rule.sport is not None and not rule.sport[0] <= k.sport <= rule.sport[1]:
        return f"source port {k.sport} is outside {rule.sport[0]}-{rule.sport[1]}"
    if rule.dport is not None and not rule.dport[0] <= k.dport <= rule.dport[1]:
        return f"destination port {k.dport} is outside {rule.dport[0]}-{rule.dport[1]}"
    return None


@dataclass(frozen=True)
class _Fib:
    ok: bool
    route: Route | None = None
    rule: PolicyRule | None = None
    table: int | None = None
    error: str | None = None


def _table_lookup(idx: _Index, table: int, k: _Key, why: list[str]) -> tuple[str, Route | None, list[str]]:
    """fib_table_lookup: ("ok"|"error"|"throw"|"miss", route, notes)."""
    routes = idx.tables.get((table, k.family))
    if not routes:
        return "miss", None, ["the table is empty"]
    notes: list[str] = []
    for r in routes:
        if k.dst not in r.dst:
            continue
        if r.type == RouteType.THROW:
            return "throw", r, notes
        if r.type in _ERROR_ROUTE_CODES:
            return "error", r, notes
        if k.oif is not None and r.dev is not None and r.dev != k.oif:
            notes.append(f"`{render_route(r)}` skipped: its device is not oif {k.oif}")
            continue
        return "ok", r, notes
    notes.append(f"no route covers {k.dst}")
    return "miss", None, notes


def _walk(idx: _Index, k: _Key, why: list[str], names: Sequence[tuple[str, int]] = ()) -> _Fib:
    rules = idx.rules[k.family]
    i = 0
    steps = 0
    while i < len(rules):
        steps += 1
        if steps > 4 * len(rules) + 8:
            why.append("rule walk stopped: goto loop")
            break
        rule = rules[i]
        text = f"rule `{_rule_text(rule)}`"
        mismatch = _rule_mismatch(rule, k)
        matched = mismatch is None
        if rule.not_:
            matched = not matched
        if not matched:
            reason = mismatch if mismatch is not None else "its selectors match and `not` inverts that"
            why.append(f"{text}: no match ({reason})")
            i += 1
            continue
        if rule.action == RuleAction.GOTO:
            target = next((j for j, r in enumerate(rules) if r.priority == rule.goto and j > i), None)
            if target is None:
                why.append(f"{text}: matches, but no rule has priority {rule.goto}; skipped")
                i += 1
                continue
            why.append(f"{text}: matches, jumps to priority {rule.goto}")
            i = target
            continue
        if rule.action == RuleAction.NOP:
            why.append(f"{text}: matches, nop")
            i += 1
            continue
        if rule.action in _ERROR_RULE_CODES:
            code = _ERROR_RULE_CODES[rule.action]
            why.append(f"{text}: matches, the rule's action is {rule.action.value} ({ERRNO_OF[code]})")
            return _Fib(False, rule=rule, error=code)
        table = rule.table if rule.table is not None else TABLE_IDS["main"]
        label = rule.table_name or _table_label(table, names)
        status, route, notes = _table_lookup(idx, table, k, why)
        detail = "; ".join(notes)
        if status == "miss":
            why.append(f"{text}: matches; table {label}: {detail}, continue with the next rule")
            i += 1
            continue
        assert route is not None
        rt = f"`{render_route(route, names)}`"
        if status == "throw":
            why.append(f"{text}: matches; table {label} gives {rt}: throw, continue with the next rule")
            i += 1
            continue
        if status == "error":
            code = _ERROR_ROUTE_CODES[route.type]
            why.append(f"{text}: matches; table {label} gives {rt} ({ERRNO_OF[code]})")
            return _Fib(False, route=route, rule=rule, table=table, error=code)
        if rule.suppress_prefixlength is not None and route.dst.prefixlen <= rule.suppress_prefixlength:
            why.append(
                f"{text}: matches; table {label} gives {rt}, but its prefix length "
                f"{route.dst.prefixlen} is not above suppress_prefixlength "
                f"{rule.suppress_prefixlength}: suppressed, continue with the next rule"
            )
            i += 1
            continue
        extra = f" ({detail})" if detail else ""
        why.append(f"{text}: matches; table {label} gives {rt}{extra}")
        return _Fib(True, route=route, rule=rule, table=table)
    why.append(f"no rule produced a route for {k.dst} (ENETUNREACH)")
    return _Fib(False, error="ENETUNREACH")


def _key(flow: Flow, family: Family, *, output: bool) -> _Key:
    return _Key(
        family=family,
        dst=flow.dst,
        src=flow.src if flow.src is not None and flow.src not in (_V4_ANY, _V6_ANY) else None,
        mark=flow.mark,
        iif=(flow.iif or "lo") if not output else "lo",
        oif=flow.oif if output else None,
        uid=(flow.uid or 0) if output else 0,
        proto=_proto_num(flow.protocol),
        sport=flow.sport,
        dport=flow.dport,
        tos=flow.tos,
    )


def fib_lookup(config: RoutingConfig, flow: Flow, family: Family | None = None) -> RouteDecision:
    """The policy-rule walk alone (no source or martian checks).

    A flow with `iif` is an input lookup (uid 0, no oif); one without is an
    output lookup (iif lo, the flow's oif and uid).
    """
    fam = family or flow.family
    idx = _index(config)
    why: list[str] = []
    k = _key(flow, fam, output=flow.iif is None)
    fib = _walk(idx, k, why, config.table_names)
    return _decision_from_fib(fib, why)


def _decision_from_fib(fib: _Fib, why: list[str]) -> RouteDecision:
    if not fib.ok:
        return RouteDecision(
            ok=False,
            rule=fib.rule,
            route=fib.route,
            table=fib.table,
            type=fib.route.type if fib.route is not None else None,
            error=fib.error,
            explanation=tuple(why),
        )
    assert fib.route is not None
    return RouteDecision(
        ok=True,
        type=fib.route.type,
        dev=fib.route.dev,
        src=fib.route.src,
        gateway=fib.route.via,
        rule=fib.rule,
        route=fib.route,
        table=fib.table,
        explanation=tuple(why),
    )


# --------------------------------------------------------------------------
# Sysctl helpers
# --------------------------------------------------------------------------


def _conf_default(sysctls: Sysctls, dev: str, name: str, default: int) -> int:
    """IN_DEV_ORCONF for a setting whose kernel default is not 0."""

    def val(key: str, fallback: int) -> int:
        return sysctls.get(key) if sysctls.explicit(key) else fallback

    all_v = val(f"net.ipv4.conf.all.{name}", default)
    dev_v = val(f"net.ipv4.conf.{dev}.{name}", val(f"net.ipv4.conf.default.{name}", default))
    return 1 if (all_v or dev_v) else 0


def _forwarding(sysctls: Sysctls, dev: str, family: Family) -> bool:
    """IN_DEV_FORWARD: the device's own forwarding flag (ip_forward sets all of them)."""
    if family == Family.IPV6:
        for key in (f"net.ipv6.conf.{dev}.forwarding", "net.ipv6.conf.all.forwarding"):
            if sysctls.explicit(key):
                return bool(sysctls.get(key))
        return False
    for key in (
        f"net.ipv4.conf.{dev}.forwarding",
        "net.ipv4.ip_forward",
        "net.ipv4.conf.all.forwarding",
        "net.ipv4.conf.default.forwarding",
    ):
        if sysctls.explicit(key):
            return bool(sysctls.get(key))
    return False


def _route_localnet(sysctls: Sysctls, dev: str) -> bool:
    return bool(sysctls.conf(dev, "route_localnet"))


# --------------------------------------------------------------------------
# Addresses
# --------------------------------------------------------------------------


def _addr_scope(a: IPAddress) -> int:
    if a.version == 4:
        return RT_SCOPE_HOST if a in _V4_LOOPBACK else RT_SCOPE_UNIVERSE
    if a == _V6_LOOPBACK:
        return RT_SCOPE_HOST
    if a.is_link_local:
        return RT_SCOPE_LINK
    return RT_SCOPE_UNIVERSE


def _is_local_v4(net: _Net, idx: _Index, a: IPAddress) -> bool:
    """__ip_dev_find: an address of some device, or a `local` route of the local table."""
    if a in net.owner:
        return True
    for r in idx.tables.get((TABLE_IDS["local"], Family.IPV4), ()):
        if a in r.dst:
            return r.type == RouteType.LOCAL
    return False


def _select_addr_v4(
    net: _Net, sysctls: Sysctls, dev: str | None, hint: IPAddress | None, scope: int
) -> tuple[IPAddress | None, str]:
    """inet_select_addr: (address, why)."""
    if dev is not None and dev in net.by_name:
        localnet_scope = RT_SCOPE_LINK if _route_localnet(sysctls, dev) else RT_SCOPE_HOST
        first: IPAddress | None = None
        for a in net.by_name[dev].addresses:
            if a.version != 4 or (dev, a) in net.secondary:
                continue
            if min(_addr_scope(a), localnet_scope) > scope:
                continue
            pfx = net.prefix.get((dev, a))
            if hint is None or (pfx is not None and hint in pfx):
                why = f"{a} is {dev}'s address" + (f" on the gateway's subnet {pfx}" if hint else "")
                return a, why
            if first is None:
                first = a
        if first is not None:
            return first, f"{first} is {dev}'s first address with a suitable scope"
    for iface in net.ifaces:
        for a in iface.addresses:
            if a.version != 4 or (iface.name, a) in net.secondary:
                continue
            s = _addr_scope(a)
            if s != RT_SCOPE_LINK and s <= scope:
                return a, f"{dev or 'the device'} has no usable address; {a} of {iface.name} is the first usable one"
    return None, "no usable source address"


def _select_addr_v6(net: _Net, dev: str | None, dst: IPAddress) -> IPAddress | None:
    """A simplified RFC 6724 choice: same address, then matching scope on the
    output device, then the longest matching prefix."""
    cands: list[tuple[tuple[int, int, int], IPAddress]] = []
    want_link = dst.is_link_local
    for iface in net.ifaces:
        for a in iface.addresses:
            if a.version != 6:
                continue
            if a == dst:
                return a
            if a == _V6_LOOPBACK or want_link != a.is_link_local:
                continue
            if want_link and iface.name != dev:
                continue
            common = _common_prefix(a, dst)
            cands.append(((0 if iface.name == dev else 1, -common, 0), a))
    if not cands:
        return None
    cands.sort(key=lambda c: c[0])
    return cands[0][1]


def _common_prefix(a: IPAddress, b: IPAddress) -> int:
    x = int(a) ^ int(b)
    return a.max_prefixlen - x.bit_length()


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
        return RouteDecision(
            ok=False,
            error=fib.error,
            rule=fib.rule,
            route=fib.route,
            table=fib.table,
            type=fib.route.type if fib.route else None,
            explanation=tuple(why),
        )
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
        return RouteDecision(
            ok=False,
            error=fib.error,
            rule=fib.rule,
            route=fib.route,
            table=fib.table,
            type=fib.route.type if fib.route else None,
            explanation=tuple(why),
        )
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
