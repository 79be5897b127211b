"""Compile iptables match criteria into predicates over a packet.

Each rule is compiled once into a list of `Check`s.  A check is a function
`(packet, env) -> bool`.  Modules that meshviz does not model compile into an
`Unmodelled` check which, when reached, makes the simulator stop with an
explicit UNSUPPORTED step naming the rule (checks are ordered so that the
cheap, modelled criteria run first: if they already fail, the rule does not
match and the unmodelled one never matters).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from meshviz.engine.core.model import CtDirection, CtState, Family, IPAddress, IPNetwork, Packet
from meshviz.engine.core.names import canonical_protocol, service_port
from meshviz.engine.netfilter.model import Match, MatchOption, Rule


class EvalEnv(Protocol):
    """What a check may ask the simulator while it evaluates a packet."""

    hook: str

    def choose(self, rule: Rule, what: str) -> bool:
        """A nondeterministic branch (statistic): the simulator explores both outcomes."""

    def socket_match(self, packet: Packet, transparent: bool, nowildcard: bool, restore_skmark: bool) -> bool:
        """`-m socket`: is there a socket for this packet (see xt_socket)."""

    def addr_type(self, addr: IPAddress, iface: str | None, limit_to_iface: bool) -> str:
        """The kernel's address type of `addr` (LOCAL, UNICAST, BROADCAST, ...)."""


Check = Callable[[Packet, EvalEnv], bool]


class Unmodelled(Exception):
    """Raised by a check that cannot be evaluated; carries the reason."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class MatchCompileError(Exception):
    """A match option value the engine cannot interpret (bad number, bad range...)."""


@dataclass(frozen=True)
class CompiledMatch:
    """A rule's criteria, ordered: modelled checks first, then any unmodelled ones."""

    checks: tuple[Check, ...]
    unmodelled: tuple[str, ...]  # reasons, in the order they would be reached
    uses_statistic: bool = False


TCP_FLAG_NAMES = ("FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR")


def parse_int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError as e:
        raise MatchCompileError(f"not a number: {text!r}") from e


def parse_mark(text: str) -> tuple[int, int]:
    """`value[/mask]` -> (value, mask); mask defaults to 0xffffffff."""
    if "/" in text:
        v, _, m = text.partition("/")
        return parse_int(v), parse_int(m)
    return parse_int(text), 0xFFFFFFFF


def parse_port_ranges(text: str) -> list[tuple[int, int]]:
    """`80`, `1000:2000`, `53,15008`, `:1024`, `1024:` -> inclusive ranges."""
    out: list[tuple[int, int]] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if ":" in part:
            lo, _, hi = part.partition(":")
            a = parse_port(lo) if lo else 0
            b = parse_port(hi) if hi else 65535
            out.append((min(a, b), max(a, b)))
        else:
            p = parse_port(part)
            out.append((p, p))
    if not out:
        raise MatchCompileError(f"empty port list: {text!r}")
    return out


def parse_port(text: str) -> int:
    """A port number or a service name, resolved as iptables resolves it (meshviz.engine.core.names)."""
    p = service_port(text)
    if p is None:
        raise MatchCompileError(f"not a port or service name: {text!r}")
    return p


def _in_ranges(port: int, ranges: list[tuple[int, int]]) -> bool:
    return any(a <= port <= b for a, b in ranges)


def parse_id_range(text: str, names: dict[str, int]) -> tuple[int, int]:
    """owner: `1337`, `1000-2000`, or a user/group name (resolved with the given table)."""
    if "-" in text and all(p.isdigit() for p in text.split("-", 1)):
        a, _, b = text.partition("-")
        return int(a), int(b)
    if text.isdigit():
        return int(text), int(text)
    if text in names:
        return names[text], names[text]
    raise Unmodelled(f"owner name {text!r} cannot be resolved to a number without the pod's /etc/passwd")


# iptables resolves user/group names when the rule is loaded, so real
# iptables-save output is always numeric; only generator dry-runs carry names
# (Istio's "ftp", "java").  Only root is universal; any other name is reported
# as unmodelled rather than guessed.
KNOWN_NAMES: dict[str, int] = {"root": 0}


def _neg(check: Check, negated: bool) -> Check:
    if not negated:
        return check
    return lambda p, env: not check(p, env)


def _values(opt: MatchOption) -> list[str]:
    return list(opt.values)


def compile_rule(rule: Rule) -> CompiledMatch:
    """Compile a rule's criteria.  Raises MatchCompileError for uninterpretable values."""
    checks: list[Check] = []
    unmodelled: list[str] = []
    uses_statistic = False

    if rule.protocol is not None and rule.protocol != "all":
        proto = canonical_protocol(rule.protocol) or rule.protocol
        checks.append(_neg(_proto_is(proto), rule.protocol_negated))
    if rule.src is not None:
        net = rule.src.network
        checks.append(_neg(_addr_check(net, "src"), rule.src.negated))
    if rule.dst is not None:
        net = rule.dst.network
        checks.append(_neg(_addr_check(net, "dst"), rule.dst.negated))
    if rule.in_iface is not None:
        crit_in = rule.in_iface
        checks.append(lambda p, env: crit_in.matches(p.in_iface))
    if rule.out_iface is not None:
        crit_out = rule.out_iface
        checks.append(lambda p, env: crit_out.matches(p.out_iface))
    if rule.fragment is not None:
        # meshviz models unfragmented packets only: `-f` never matches, `! -f` always.
        frag = rule.fragment
        checks.append(lambda p, env: not frag)

    late: list[Check] = []
    for m in rule.matches:
        compiled = _compile_module(m, rule)
        if isinstance(compiled, str):
            unmodelled.append(compiled)
            continue
        if m.module == "statistic":
            uses_statistic = True
            late.extend(compiled)  # branch last: only when everything else matched
        else:
            checks.extend(compiled)
    checks.extend(late)
    return CompiledMatch(tuple(checks), tuple(unmodelled), uses_statistic)


def _proto_is(proto: str) -> Check:
    def check(p: Packet, env: EvalEnv) -> bool:
        return p.protocol == proto

    return check


def _port_in(ranges: list[tuple[int, int]], sport: bool, dport: bool) -> Check:
    def check(p: Packet, env: EvalEnv) -> bool:
        return (sport and _in_ranges(p.sport, ranges)) or (dport and _in_ranges(p.dport, ranges))

    return check


def _mark_is(value: int, mask: int) -> Check:
    def check(p: Packet, env: EvalEnv) -> bool:
        return (p.mark & mask) == value

    return check


def _state_in(wanted: set[str]) -> Check:
    def check(p: Packet, env: EvalEnv) -> bool:
        return _state_of(p) in wanted

    return check


def _ctdir_is(want: str) -> Check:
    def check(p: Packet, env: EvalEnv) -> bool:
        return p.ctstate is not None and p.ctdir.value == want

    return check


def _addr_in_range(lo: IPAddress, hi: IPAddress, src: bool) -> Check:
    def check(p: Packet, env: EvalEnv) -> bool:
        return _in_addr_range(p.src if src else p.dst, lo, hi)

    return check


def _addr_check(net: IPNetwork, field_name: str) -> Check:
    if field_name == "src":
        return lambda p, env: p.src.version == net.version and p.src in net
    return lambda p, env: p.dst.version == net.version and p.dst in net


def _compile_module(m: Match, rule: Rule) -> list[Check] | str:
    fn = _MODULES.get(m.module)
    if fn is None:
        return f"match module '{m.module}' is not modelled by meshviz"
    try:
        return fn(m, rule)
    except Unmodelled as e:
        return e.reason


# --------------------------------------------------------------------------
# Module compilers
# --------------------------------------------------------------------------


def _m_ports(m: Match, rule: Rule) -> list[Check]:
    """tcp / udp / sctp / udplite / dccp: --sport/--dport (and tcp flags)."""
    proto = "ipv6-icmp" if m.module == "icmp6" else m.module
    checks: list[Check] = [lambda p, env: p.protocol == proto]
    for opt in m.options:
        name = opt.name
        if name in ("sport", "source-port", "dport", "destination-port"):
            ranges = parse_port_ranges(",".join(_values(opt)))
            if name in ("sport", "source-port"):
                checks.append(_neg(_port_in(ranges, sport=True, dport=False), opt.negated))
            else:
                checks.append(_neg(_port_in(ranges, sport=False, dport=True), opt.negated))
        elif name == "syn":
            checks.append(_neg(_tcp_flags_check({"SYN", "RST", "ACK", "FIN"}, {"SYN"}), opt.negated))
        elif name == "tcp-flags":
            vals = _values(opt)
            if len(vals) != 2:
                raise MatchCompileError("--tcp-flags takes a mask and a comparison list")
            mask, comp = (_flag_set(v) for v in vals)
            checks.append(_neg(_tcp_flags_check(mask, comp), opt.negated))
        elif name == "tcp-option":
            raise Unmodelled("--tcp-option inspects TCP options, which meshviz does not model")
        else:
            raise Unmodelled(f"option --{name} of match '{m.module}' is not modelled")
    return checks


def _flag_set(text: str) -> set[str]:
    if text.upper() == "ALL":
        return set(TCP_FLAG_NAMES)
    if text.upper() == "NONE":
        return set()
    return {f.strip().upper() for f in text.split(",") if f.strip()}


def _tcp_flags_check(mask: set[str], comp: set[str]) -> Check:
    def check(p: Packet, env: EvalEnv) -> bool:
        if p.protocol != "tcp":
            return False
        return {f for f in p.tcp_flags if f in mask} == comp

    return check


def _m_icmp(m: Match, rule: Rule) -> list[Check]:
    proto = "icmp" if m.module == "icmp" else "ipv6-icmp"
    checks: list[Check] = [lambda p, env: p.protocol == proto]
    for opt in m.options:
        raise Unmodelled(f"--{opt.name}: ICMP types are not modelled")
    return checks


def _m_multiport(m: Match, rule: Rule) -> list[Check]:
    checks: list[Check] = []
    for opt in m.options:
        ranges = parse_port_ranges(",".join(_values(opt)))
        if opt.name in ("dports", "destination-ports"):
            checks.append(_neg(_port_in(ranges, sport=False, dport=True), opt.negated))
        elif opt.name in ("sports", "source-ports"):
            checks.append(_neg(_port_in(ranges, sport=True, dport=False), opt.negated))
        elif opt.name == "ports":
            checks.append(_neg(_port_in(ranges, sport=True, dport=True), opt.negated))
        else:
            raise Unmodelled(f"multiport option --{opt.name} is not modelled")
    return checks


def _m_owner(m: Match, rule: Rule) -> list[Check]:
    """xt_owner.  Without a socket (received or forwarded packets) the kernel
    returns true exactly when every given criterion is negated:
    `(info->match ^ info->invert) == 0` - so `! --uid-owner 1337` matches them."""
    parts: list[tuple[str, int, int, bool]] = []
    all_negated = True
    for opt in m.options:
        all_negated = all_negated and opt.negated
        if opt.name in ("uid-owner", "gid-owner"):
            lo, hi = parse_id_range(opt.values[0], KNOWN_NAMES)
            parts.append((opt.name[:3], lo, hi, opt.negated))
        elif opt.name == "socket-exists":
            parts.append(("socket", 0, 0, opt.negated))
        elif opt.name == "suppl-groups":
            raise Unmodelled("--suppl-groups needs the process's supplementary groups, which meshviz does not model")
        else:
            raise Unmodelled(f"owner option --{opt.name} is not modelled")

    def check(p: Packet, env: EvalEnv) -> bool:
        if p.uid is None:
            return all_negated
        for which, lo, hi, neg in parts:
            if which == "socket":
                hit = True
            else:
                v = p.uid if which == "uid" else p.gid
                hit = v is not None and lo <= v <= hi
            if hit == neg:
                return False
        return True

    return [check]


def _m_mark(m: Match, rule: Rule) -> list[Check]:
    checks: list[Check] = []
    for opt in m.options:
        if opt.name != "mark":
            raise Unmodelled(f"mark option --{opt.name} is not modelled")
        value, mask = parse_mark(opt.values[0])
        checks.append(_neg(_mark_is(value, mask), opt.negated))
    return checks


def _m_connmark(m: Match, rule: Rule) -> list[Check]:
    checks: list[Check] = []
    for opt in m.options:
        if opt.name != "mark":
            raise Unmodelled(f"connmark option --{opt.name} is not modelled")
        value, mask = parse_mark(opt.values[0])

        def check(p: Packet, env: EvalEnv, v: int = value, k: int = mask, neg: bool = opt.negated) -> bool:
            if p.ctstate in (None, CtState.UNTRACKED, CtState.INVALID):
                return False  # no conntrack entry: connmark never matches
            return ((p.ctmark & k) == v) != neg

        checks.append(check)
    return checks


def _states(text: str) -> set[str]:
    out = set()
    for s in text.split(","):
        s = s.strip().upper()
        if s not in ("NEW", "ESTABLISHED", "RELATED", "INVALID", "UNTRACKED", "SNAT", "DNAT"):
            raise MatchCompileError(f"unknown conntrack state {s!r}")
        out.add(s)
    return out


def _m_conntrack(m: Match, rule: Rule) -> list[Check]:
    checks: list[Check] = []
    for opt in m.options:
        if opt.name in ("ctstate", "state"):
            wanted = _states(opt.values[0])
            checks.append(_neg(_state_in(wanted), opt.negated))
        elif opt.name == "ctdir":
            want = opt.values[0].upper()
            checks.append(_neg(_ctdir_is(want), opt.negated))
        else:
            raise Unmodelled(f"conntrack option --{opt.name} is not modelled")
    return checks


def _state_of(p: Packet) -> str:
    return (p.ctstate or CtState.INVALID).value


def _m_state(m: Match, rule: Rule) -> list[Check]:
    return _m_conntrack(m, rule)


def _m_socket(m: Match, rule: Rule) -> list[Check]:
    transparent = m.option("transparent") is not None
    nowildcard = m.option("nowildcard") is not None
    restore = m.option("restore-skmark") is not None
    return [lambda p, env: env.socket_match(p, transparent, nowildcard, restore)]


_ADDR_TYPES = {
    "UNSPEC",
    "UNICAST",
    "LOCAL",
    "BROADCAST",
    "ANYCAST",
    "MULTICAST",
    "BLACKHOLE",
    "UNREACHABLE",
    "PROHIBIT",
    "THROW",
    "NAT",
    "XRESOLVE",
}


def _m_addrtype(m: Match, rule: Rule) -> list[Check]:
    checks: list[Check] = []
    limit_in = m.option("limit-iface-in") is not None
    limit_out = m.option("limit-iface-out") is not None
    for opt in m.options:
        if opt.name in ("limit-iface-in", "limit-iface-out"):
            continue
        if opt.name not in ("src-type", "dst-type"):
            raise Unmodelled(f"addrtype option --{opt.name} is not modelled")
        types = {t.strip().upper() for t in opt.values[0].split(",")}
        bad = types - _ADDR_TYPES
        if bad:
            raise MatchCompileError(f"unknown address type {sorted(bad)[0]!r}")
        is_src = opt.name == "src-type"

        def check(p: Packet, env: EvalEnv, t: set[str] = types, s: bool = is_src, neg: bool = opt.negated) -> bool:
            addr = p.src if s else p.dst
            iface = p.in_iface if limit_in else (p.out_iface if limit_out else None)
            return (env.addr_type(addr, iface, limit_in or limit_out) in t) != neg

        checks.append(check)
    return checks


def _m_comment(m: Match, rule: Rule) -> list[Check]:
    return []


def _m_statistic(m: Match, rule: Rule) -> list[Check]:
    mode = m.option("mode")
    if mode is None:
        raise MatchCompileError("statistic needs --mode")
    parts = [("--" + o.name + " " + " ".join(o.values)).strip() for o in m.options]
    what = "statistic " + " ".join(parts)
    negated = any(o.negated for o in m.options if o.name in ("probability", "every"))
    return [lambda p, env: env.choose(rule, what) != negated]


def _m_iprange(m: Match, rule: Rule) -> list[Check]:
    checks: list[Check] = []
    for opt in m.options:
        a, _, b = opt.values[0].partition("-")
        lo, hi = ipaddress.ip_address(a), ipaddress.ip_address(b or a)
        if opt.name == "src-range":
            checks.append(_neg(_addr_in_range(lo, hi, src=True), opt.negated))
        elif opt.name == "dst-range":
            checks.append(_neg(_addr_in_range(lo, hi, src=False), opt.negated))
        else:
            raise Unmodelled(f"iprange option --{opt.name} is not modelled")
    return checks


def _in_addr_range(a: IPAddress, lo: IPAddress, hi: IPAddress) -> bool:
    return a.version == lo.version and lo <= a <= hi  # type: ignore[operator]


def _m_pkttype(m: Match, rule: Rule) -> list[Check]:
    opt = m.option("pkt-type")
    if opt is None:
        raise MatchCompileError("pkttype needs --pkt-type")
    want = opt.values[0].lower()

    def check(p: Packet, env: EvalEnv) -> bool:
        if p.dst.is_multicast:
            kind = "multicast"
        elif p.dst.version == 4 and str(p.dst).endswith(".255"):
            kind = "broadcast"
        else:
            kind = "unicast"
        return (kind == want) != opt.negated

    return [check]


def _unmodelled_module(reason: str) -> Callable[[Match, Rule], list[Check]]:
    def compile_(m: Match, rule: Rule) -> list[Check]:
        raise Unmodelled(reason)

    return compile_


_MODULES: dict[str, Callable[[Match, Rule], list[Check]]] = {
    "tcp": _m_ports,
    "udp": _m_ports,
    "sctp": _m_ports,
    "udplite": _m_ports,
    "dccp": _m_ports,
    "icmp": _m_icmp,
    "icmp6": _m_icmp,
    "icmpv6": _m_icmp,
    "ipv6-icmp": _m_icmp,
    "multiport": _m_multiport,
    "owner": _m_owner,
    "mark": _m_mark,
    "connmark": _m_connmark,
    "conntrack": _m_conntrack,
    "state": _m_state,
    "socket": _m_socket,
    "addrtype": _m_addrtype,
    "comment": _m_comment,
    "statistic": _m_statistic,
    "iprange": _m_iprange,
    "pkttype": _m_pkttype,
    "set": _unmodelled_module("match 'set' needs the contents of an ipset, which iptables-save does not include"),
}


def ct_state_for(dir_: CtDirection, seen_reply: bool) -> CtState:
    """The conntrack state a packet of an existing connection gets."""
    if dir_ == CtDirection.REPLY or seen_reply:
        return CtState.ESTABLISHED
    return CtState.NEW


def family_of_rule(rule: Rule) -> Family | None:
    for crit in (rule.src, rule.dst):
        if crit is not None:
            return Family.of(crit.network)
    return None
