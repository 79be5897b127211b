"""The routing model: policy rules, routes, interfaces and the sysctls routing reads."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from meshviz.engine.core.model import Family, IPAddress, IPNetwork, SourceRef

# --------------------------------------------------------------------------

# Well-known routing table ids (iproute2's /etc/iproute2/rt_tables).
TABLE_IDS: dict[str, int] = {"unspec": 0, "default": 253, "main": 254, "local": 255}


class RouteType(StrEnum):
    UNICAST = "unicast"
    LOCAL = "local"
    BROADCAST = "broadcast"
    MULTICAST = "multicast"
    ANYCAST = "anycast"
    BLACKHOLE = "blackhole"
    UNREACHABLE = "unreachable"
    PROHIBIT = "prohibit"
    THROW = "throw"
    NAT = "nat"


class RuleAction(StrEnum):
    LOOKUP = "lookup"
    GOTO = "goto"
    NOP = "nop"
    BLACKHOLE = "blackhole"
    UNREACHABLE = "unreachable"
    PROHIBIT = "prohibit"


@dataclass(frozen=True)
class PolicyRule:
    """One `ip rule` entry."""

    priority: int
    action: RuleAction = RuleAction.LOOKUP
    table: int | None = None  # for LOOKUP
    table_name: str | None = None  # the name as written, e.g. "eni-1"
    goto: int | None = None  # target priority for GOTO
    src: IPNetwork | None = None  # None = "from all"
    dst: IPNetwork | None = None  # None = "to all"
    fwmark: int | None = None
    fwmask: int = 0xFFFFFFFF
    iif: str | None = None
    oif: str | None = None
    uidrange: tuple[int, int] | None = None
    ipproto: str | None = None
    sport: tuple[int, int] | None = None
    dport: tuple[int, int] | None = None
    tos: int | None = None
    not_: bool = False
    suppress_prefixlength: int | None = None
    family: Family = Family.IPV4
    ref: SourceRef | None = None


@dataclass(frozen=True)
class Route:
    """One route of one table (`ip route show table all` line)."""

    table: int
    type: RouteType
    dst: IPNetwork  # "default" is 0.0.0.0/0 or ::/0
    dev: str | None = None
    via: IPAddress | None = None
    src: IPAddress | None = None
    scope: str | None = None
    proto: str | None = None
    metric: int = 0
    table_name: str | None = None
    ref: SourceRef | None = None


@dataclass(frozen=True)
class RoutingConfig:
    """Policy rules plus every routing table, per family."""

    rules: tuple[PolicyRule, ...] = ()
    routes: tuple[Route, ...] = ()
    # Table names seen in the input ("eni-1" -> id) so output can print them back.
    table_names: tuple[tuple[str, int], ...] = ()

    def table(self, table_id: int, family: Family) -> tuple[Route, ...]:
        return tuple(r for r in self.routes if r.table == table_id and Family.of(r.dst) == family)


# --------------------------------------------------------------------------
# Interfaces, sysctls, sockets
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Interface:
    name: str
    addresses: tuple[IPAddress, ...] = ()  # first one is the primary address
    loopback: bool = False


SYSCTL_DEFAULTS: dict[str, int] = {
    # Kernel defaults for a fresh network namespace.
    "net.ipv4.ip_forward": 0,
    "net.ipv4.conf.all.route_localnet": 0,
    "net.ipv4.conf.default.route_localnet": 0,
    "net.ipv4.conf.all.rp_filter": 0,
    "net.ipv4.conf.default.rp_filter": 0,
    "net.ipv4.conf.all.src_valid_mark": 0,
    "net.ipv4.conf.default.src_valid_mark": 0,
    "net.ipv4.conf.all.accept_local": 0,
    "net.ipv4.ip_nonlocal_bind": 0,
    "net.ipv4.tcp_fwmark_accept": 0,
    "net.ipv6.conf.all.forwarding": 0,
}


@dataclass(frozen=True)
class Sysctls:
    """Sysctl values as given; `get` falls back to kernel defaults."""

    values: tuple[tuple[str, str], ...] = ()

    def get(self, key: str) -> int:
        for k, v in self.values:
            if k == key:
                try:
                    return int(v.split()[0])
                except (ValueError, IndexError):
                    return 0
        return SYSCTL_DEFAULTS.get(key, 0)

    def explicit(self, key: str) -> bool:
        return any(k == key for k, _ in self.values)

    def conf(self, iface: str, name: str) -> int:
        """Per-interface IPv4 conf value as the kernel combines it with `all`.

        `rp_filter` uses max(all, iface); `route_localnet`, `src_valid_mark`
        and `accept_local` are on when either is on (IN_DEV_ORCONF).
        An interface without an explicit value takes `default`'s value.
        """
        all_v = self.get(f"net.ipv4.conf.all.{name}")
        key = f"net.ipv4.conf.{iface}.{name}"
        dev_v = self.get(key) if self.explicit(key) else self.get(f"net.ipv4.conf.default.{name}")
        if name == "rp_filter":
            return max(all_v, dev_v)
        return 1 if (all_v or dev_v) else 0


class RoutingState(Protocol):
    """What routing decisions read of a pod: its policy rules and routes, sysctls and interfaces.

    `sim.snapshot.Snapshot` is one; the routing layer needs nothing else of it.
    """

    @property
    def routing(self) -> RoutingConfig: ...

    @property
    def sysctls(self) -> Sysctls: ...

    @property
    def interfaces(self) -> tuple[Interface, ...]: ...
