"""What routing is asked and what it answers: a Flow in, a RouteDecision out (with errno and reasons); scopes,
error codes and the `ip rule`/`ip route` renderings the reasons quote.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from meshviz.engine.core.model import Family, IPAddress, IPNetwork
from meshviz.engine.core.names import protocol_number
from meshviz.engine.routing.model import (
    TABLE_IDS,
    PolicyRule,
    Route,
    RouteType,
    RuleAction,
)

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

_V4_LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
_V4_ZERONET = ipaddress.ip_network("0.0.0.0/8")
_V4_MULTICAST = ipaddress.ip_network("224.0.0.0/4")
_V4_LOCAL_MULTICAST = ipaddress.ip_network("224.0.0.0/24")
_V4_LBCAST = ipaddress.ip_address("255.255.255.255")
_V4_ANY = ipaddress.ip_address("0.0.0.0")
_V6_ANY = ipaddress.ip_address("::")
_V6_LOOPBACK = ipaddress.ip_address("::1")

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
