"""The engine's typed model: what a pod's kernel is configured with.

Everything here is a frozen dataclass so that a parsed snapshot can be shared,
hashed and compared.  Parsers build these objects; the simulator only reads
them.  Nothing in this module knows about Django, Celery or Kubernetes.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from meshviz.engine.nftables.model import NftRuleset

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Family(StrEnum):
    IPV4 = "ipv4"
    IPV6 = "ipv6"

    @staticmethod
    def of(addr: IPAddress | IPNetwork) -> Family:
        return Family.IPV4 if addr.version == 4 else Family.IPV6


class CtState(StrEnum):
    """Conntrack states as the `conntrack --ctstate` / `state` matches see them."""

    NEW = "NEW"
    ESTABLISHED = "ESTABLISHED"
    RELATED = "RELATED"
    INVALID = "INVALID"
    UNTRACKED = "UNTRACKED"


class CtDirection(StrEnum):
    ORIGINAL = "ORIGINAL"
    REPLY = "REPLY"


# --------------------------------------------------------------------------
# Packets
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Packet:
    """One packet at one point of its journey.

    `uid`/`gid` are the owner of the sending socket (only for locally
    generated packets; the `owner` match never matches otherwise).
    `ctstate`/`ctdir`/`ctmark` are what conntrack has attached to the packet
    so far; the simulator fills them in at the conntrack hook.
    """

    src: IPAddress
    dst: IPAddress
    protocol: str = "tcp"
    sport: int = 0
    dport: int = 0
    tcp_flags: frozenset[str] = frozenset({"SYN"})
    in_iface: str | None = None
    out_iface: str | None = None
    mark: int = 0
    uid: int | None = None
    gid: int | None = None
    ctstate: CtState | None = None
    ctdir: CtDirection = CtDirection.ORIGINAL
    ctmark: int = 0

    @property
    def family(self) -> Family:
        return Family.of(self.src)

    def describe(self) -> str:
        sp = f":{self.sport}" if self.sport else ""
        dp = f":{self.dport}" if self.dport else ""
        s = f"[{self.src}]" if self.src.version == 6 and sp else str(self.src)
        d = f"[{self.dst}]" if self.dst.version == 6 and dp else str(self.dst)
        return f"{self.protocol} {s}{sp} -> {d}{dp}"


# --------------------------------------------------------------------------
# Netfilter rulesets
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceRef:
    """Where a parsed object came from: file name, 1-based line, original text."""

    source: str
    line: int
    text: str


@dataclass(frozen=True)
class MatchOption:
    """One option of a match, e.g. `! --uid-owner 1337` -> ("uid-owner", ("1337",), True)."""

    name: str
    values: tuple[str, ...] = ()
    negated: bool = False


def find_option(options: tuple[MatchOption, ...], name: str) -> MatchOption | None:
    """The first option called `name` (a match's or a target's)."""
    return next((opt for opt in options if opt.name == name), None)


@dataclass(frozen=True)
class Match:
    """A match module (`-m owner ...`) with its options.

    The protocol's implicit match (`-p tcp --dport 80` without `-m tcp`) is
    represented as a Match whose module is the protocol name and `implicit`
    set, so the rule can be printed back as written.
    """

    module: str
    options: tuple[MatchOption, ...] = ()
    implicit: bool = False

    def option(self, name: str) -> MatchOption | None:
        return find_option(self.options, name)


@dataclass(frozen=True)
class Target:
    """`-j NAME [options]` or `-g CHAIN`.  `goto` marks `-g`."""

    name: str
    options: tuple[MatchOption, ...] = ()
    goto: bool = False

    def option(self, name: str) -> MatchOption | None:
        return find_option(self.options, name)


@dataclass(frozen=True)
class AddrCriterion:
    network: IPNetwork
    negated: bool = False


@dataclass(frozen=True)
class IfaceCriterion:
    """`-i eth+` style interface criterion (`+` is a prefix wildcard)."""

    name: str
    negated: bool = False

    def matches(self, iface: str | None) -> bool:
        if iface is None:
            hit = False
        elif self.name.endswith("+"):
            hit = iface.startswith(self.name[:-1])
        else:
            hit = iface == self.name
        return hit != self.negated


@dataclass(frozen=True)
class Rule:
    """One rule: the built-in criteria, the match modules in order, the target."""

    table: str
    chain: str
    protocol: str | None = None
    protocol_negated: bool = False
    src: AddrCriterion | None = None
    dst: AddrCriterion | None = None
    in_iface: IfaceCriterion | None = None
    out_iface: IfaceCriterion | None = None
    fragment: bool | None = None  # -f / ! -f
    matches: tuple[Match, ...] = ()
    target: Target | None = None  # None: a rule with no target (counts only)
    counters: tuple[int, int] | None = None
    ref: SourceRef | None = None

    def text(self) -> str:
        """The rule as the user wrote it (or a canonical rendering if unknown)."""
        if self.ref is not None:
            return self.ref.text
        from meshviz.engine.iptables_render import render_rule  # local: avoid a cycle

        text: str = render_rule(self)
        return text

    def comment(self) -> str | None:
        for m in self.matches:
            if m.module == "comment":
                opt = m.option("comment")
                if opt and opt.values:
                    return opt.values[0]
        return None


BUILTIN_CHAINS: dict[str, tuple[str, ...]] = {
    "raw": ("PREROUTING", "OUTPUT"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "security": ("INPUT", "FORWARD", "OUTPUT"),
}


@dataclass(frozen=True)
class Chain:
    name: str
    rules: tuple[Rule, ...] = ()
    policy: str | None = None  # ACCEPT/DROP for built-in chains, None for user chains
    builtin: bool = False
    counters: tuple[int, int] | None = None
    ref: SourceRef | None = None


@dataclass(frozen=True)
class Table:
    name: str
    chains: tuple[Chain, ...] = ()

    def chain(self, name: str) -> Chain | None:
        for c in self.chains:
            if c.name == name:
                return c
        return None


@dataclass(frozen=True)
class Ruleset:
    """All tables of one address family."""

    family: Family
    tables: tuple[Table, ...] = ()
    source: str = "<iptables>"

    def table(self, name: str) -> Table | None:
        for t in self.tables:
            if t.name == name:
                return t
        return None

    def rule_count(self) -> int:
        return sum(len(c.rules) for t in self.tables for c in t.chains)


# --------------------------------------------------------------------------
# Policy routing
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


@dataclass(frozen=True)
class Socket:
    """A socket in the pod's network namespace, as far as lookups care.

    A listening socket has no `remote`.  `local_addr` None means a wildcard
    bind (0.0.0.0 / ::).  `transparent` is IP_TRANSPARENT; `mark` is SO_MARK.
    """

    protocol: str
    local_port: int
    local_addr: IPAddress | None = None
    remote_addr: IPAddress | None = None
    remote_port: int | None = None
    transparent: bool = False
    mark: int = 0
    uid: int | None = None
    gid: int | None = None
    name: str = ""  # "envoy inbound 15006", "app :8080" ...
    family: Family = Family.IPV4  # needed for wildcard binds (0.0.0.0 vs ::)

    @property
    def listening(self) -> bool:
        return self.remote_addr is None

    def describe(self) -> str:
        if self.local_addr is not None:
            la = f"[{self.local_addr}]" if self.local_addr.version == 6 else str(self.local_addr)
        else:
            la = "*" if self.family == Family.IPV4 else "[::]"
        s = f"{self.protocol} {la}:{self.local_port}"
        if not self.listening:
            s += f" <-> {self.remote_addr}:{self.remote_port}"
        flags = []
        if self.transparent:
            flags.append("IP_TRANSPARENT")
        if self.mark:
            flags.append(f"SO_MARK={self.mark}")
        if flags:
            s += " (" + ", ".join(flags) + ")"
        return f"{self.name}: {s}" if self.name else s


@dataclass(frozen=True)
class Snapshot:
    """Everything known about one pod's network namespace."""

    rulesets: tuple[Ruleset, ...] = ()
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    sysctls: Sysctls = field(default_factory=Sysctls)
    interfaces: tuple[Interface, ...] = ()
    sockets: tuple[Socket, ...] | None = None  # None: unknown (lookups are assumed)
    assumptions: tuple[str, ...] = ()
    nftables: NftRuleset | None = None  # native nftables tables (`nft list ruleset`), beside `rulesets`

    def ruleset(self, family: Family) -> Ruleset | None:
        for r in self.rulesets:
            if r.family == family:
                return r
        return None

    def interface(self, name: str) -> Interface | None:
        for i in self.interfaces:
            if i.name == name:
                return i
        return None
