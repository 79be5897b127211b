"""The FIB: per-config indexes, the policy-rule walk (fib_lookup), the sysctls routing reads and source-address
selection. The input and output paths (routing/input.py, routing/output.py) are built on it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

from meshviz.engine.core.model import Family, IPAddress, IPNetwork
from meshviz.engine.routing.defaults import _rule_key, default_policy_rules, interfaces_from_routes
from meshviz.engine.routing.flow import (
    _ERROR_ROUTE_CODES,
    _ERROR_RULE_CODES,
    _V4_ANY,
    _V4_LOOPBACK,
    _V6_ANY,
    _V6_LOOPBACK,
    ERRNO_OF,
    RT_SCOPE_HOST,
    RT_SCOPE_LINK,
    RT_SCOPE_UNIVERSE,
    Flow,
    RouteDecision,
    _hex,
    _proto_num,
    _rule_text,
    _table_label,
    render_route,
)
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
