"""Run an nftables base chain for one packet, as the kernel's nf_tables does.

A rule's statements run left to right: a relational match that fails ends the rule (NFT_BREAK) and the next
rule is tried; statements with effects (`meta mark set`, `ct mark set`, `ct zone set`, `notrack`, `tproxy`)
apply as they are reached; a verdict ends the rule.  Expressions carry their protocol dependencies as nft adds
them: `ip saddr` only matches IPv4 packets (in an `inet` table), `tcp dport` only TCP; `meta skuid` without a
local socket, `ct mark` without a connection end the rule whatever the operator.  `tproxy` is not a verdict:
without a transparent socket the rule ends (NFT_BREAK) and the chain continues.  `redirect`, `dnat`, `snat`
and `masquerade` set up the NAT binding and accept.  A statement that is not modelled is an UNSUPPORTED step
naming the rule - unless a later match of the same rule already fails, in which case it cannot matter.

The Journey callbacks (NAT bindings, TPROXY socket assignment, conntrack marks and zones) are the ones the
iptables targets use (`netfilter.Journey`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from meshviz.engine.core.limits import jump_depth_reached, rule_budget_reached
from meshviz.engine.core.model import CtDirection, IPAddress, Packet
from meshviz.engine.core.names import protocol_number, service_port
from meshviz.engine.core.netaddr import parse_ip
from meshviz.engine.core.trace import Step, StepAction, StepKind
from meshviz.engine.netfilter.walk import Journey, TableVerdict, WalkBudget, describe_change
from meshviz.engine.nftables import lookup
from meshviz.engine.nftables.model import (
    AnonSet,
    Binop,
    Concat,
    Element,
    Expr,
    FlagList,
    Match,
    Nat,
    NftChain,
    NftRule,
    NftTable,
    Right,
    Selector,
    SetRef,
    SetStmt,
    Simple,
    Tproxy,
    Unmodelled,
    Value,
    Verdict,
    Vmap,
)

#: The step action of each verdict.
_VERDICT_ACTION = {
    "accept": StepAction.ACCEPT,
    "drop": StepAction.DROP,
    "return": StepAction.RETURN,
    "jump": StepAction.JUMP,
    "goto": StepAction.GOTO,
}


def _other_family(family: str | None, p: Packet) -> bool:
    """A statement written for `ip` (or `ip6`) on a packet of the other family."""
    return family is not None and p.family.value != ("ipv4" if family == "ip" else "ipv6")


class Unsupported(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class _Break(Exception):
    """The rule ends here (NFT_BREAK): the expression cannot be evaluated for this packet (no socket, no
    connection, another protocol)."""


class _Proto(str):
    """A protocol name read from the packet (compared by number: `tcp` == `6`)."""


class _Port(int):
    """A transport port read from the packet (`http` in a rule is 80)."""


class _Flags(int):
    """TCP flags read from the packet, as nft's bitmask (fin 0x01 ... cwr 0x80)."""


TCP_FLAGS = {"fin": 0x01, "syn": 0x02, "rst": 0x04, "psh": 0x08, "ack": 0x10, "urg": 0x20, "ecn": 0x40, "cwr": 0x80}


def _flags(text: str) -> int:
    """`syn|ack`, `(syn | ack)`, `0x12` -> the bitmask."""
    out = 0
    for part in text.strip("()").replace(",", "|").split("|"):
        part = part.strip().strip("()")
        out |= TCP_FLAGS[part] if part in TCP_FLAGS else _int(part)
    return out


class _Iface(str):
    """An interface name read from the packet (`eth*` in a rule is a prefix)."""


_CT_STATES = {"new", "established", "related", "invalid", "untracked"}
_USERS = {"root": 0}


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError as e:
        if text in _USERS:
            return _USERS[text]
        raise Unsupported(f"{text!r} is not a number (user and group names need the pod's /etc/passwd)") from e


# --------------------------------------------------------------------------
# Reading the packet
# --------------------------------------------------------------------------


def _fetch(sel: Selector, p: Packet, j: Journey) -> object:
    """The selector's value for this packet; raises _Break when nft would end the rule, Unsupported when the
    selector is not modelled."""
    k = sel.key
    proto, _, field = k.partition(" ")
    if proto in ("ip", "ip6"):
        if p.family.value != ("ipv4" if proto == "ip" else "ipv6"):
            raise _Break
        if field == "saddr":
            return p.src
        if field == "daddr":
            return p.dst
        if field in ("protocol", "nexthdr"):
            return _Proto(p.protocol)
    elif proto in ("tcp", "udp", "th", "sctp", "udplite", "dccp") and field in ("sport", "dport"):
        if (proto == "th" and p.protocol not in ("tcp", "udp", "sctp", "udplite", "dccp")) or (
            proto != "th" and p.protocol != proto
        ):
            raise _Break
        return _Port(p.sport if field == "sport" else p.dport)
    elif k == "tcp flags":
        if p.protocol != "tcp":
            raise _Break
        return _Flags(sum(TCP_FLAGS.get(f.lower(), 0) for f in p.tcp_flags))
    elif proto == "meta":
        if field == "l4proto":
            return _Proto(p.protocol)
        if field == "nfproto":
            return p.family.value
        if field in ("iifname", "iif"):
            if p.in_iface is None:
                raise _Break
            return _Iface(p.in_iface)
        if field in ("oifname", "oif"):
            if p.out_iface is None:
                raise _Break
            return _Iface(p.out_iface)
        if field == "mark":
            return p.mark
        if field in ("skuid", "skgid"):
            v = p.uid if field == "skuid" else p.gid
            if v is None:
                raise _Break
            return v
    elif proto == "ct":
        if field == "state":
            return p.ctstate.value.lower() if p.ctstate is not None else "invalid"
        if field == "mark":
            m = j.ct_mark()
            if m is None:
                raise _Break
            return m
        if field == "zone":
            return int(getattr(j, "zone", 0))
        if field == "direction":
            return "original" if p.ctdir == CtDirection.ORIGINAL else "reply"
        if field in ("protocol", "l3proto"):
            return _Proto(p.protocol) if field == "protocol" else p.family.value
    elif proto == "fib":
        flags, _, result = field.rpartition(" ")
        parts = [f.strip() for f in flags.split(".")]
        if result == "type" and parts and parts[0] in ("daddr", "saddr") and set(parts[1:]) <= {"iif"}:
            addr = p.dst if parts[0] == "daddr" else p.src
            return j.addr_type(addr, p.in_iface, "iif" in parts).lower()
    elif proto == "socket" and field == "transparent":
        if j.socket_match(p, True, True, False):
            return 1
        if j.socket_match(p, False, True, False):
            return 0
        raise _Break
    raise Unsupported(f"the expression {k} is not modelled")


def _value(e: Expr, p: Packet, j: Journey) -> object:
    if isinstance(e, Selector):
        return _fetch(e, p, j)
    if isinstance(e, Binop):
        left = _value(e.left, p, j)
        if not isinstance(left, int):
            raise Unsupported(f"{e.text()}: bit operations on a non-number")
        r = _flags(e.right.text_) if isinstance(left, _Flags) else _int(e.right.text_)
        out = {"&": left & r, "|": left | r, "^": left ^ r, "<<": left << r, ">>": left >> r}[e.op] & 0xFFFFFFFF
        return _Flags(out) if isinstance(left, _Flags) else out
    if isinstance(e, Value):
        return _int(e.text_)
    raise Unsupported(f"{e.text()} is not modelled here")


# --------------------------------------------------------------------------
# Comparing
# --------------------------------------------------------------------------


def _eq(have: object, want: str) -> bool:
    """Does the packet's value `have` equal (or fall in) the constant `want` as written?"""
    if isinstance(have, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return _addr_in(have, want)
    if isinstance(have, _Proto):
        return protocol_number(have) == protocol_number(want)
    if isinstance(have, _Iface) and want.endswith("*"):
        return have.startswith(want[:-1])
    if isinstance(have, str):
        return have == want
    if isinstance(have, _Flags):
        return have == _flags(want)
    if isinstance(have, int):
        num = _num if isinstance(have, _Port) else _int
        lo, sep, hi = want.partition("-")
        if sep and lo and hi:
            return num(lo) <= have <= num(hi)
        return have == num(want)
    raise Unsupported(f"cannot compare {have!r} with {want}")


def _num(text: str) -> int:
    port = service_port(text) if not text[:1].isdigit() else None
    return port if port is not None else _int(text)


def _addr_in(a: IPAddress, want: str) -> bool:
    try:
        if "/" in want:
            return a in ipaddress.ip_network(want, strict=False)
        lo, sep, hi = want.partition("-")
        if sep:
            a_lo, a_hi = parse_ip(lo), parse_ip(hi)
            return a.version == a_lo.version and a_lo <= a <= a_hi  # type: ignore[operator]
        return a == parse_ip(want)
    except ValueError as e:
        raise Unsupported(f"{want!r} is not an address") from e


_VALUE_TYPES = lookup.ValueTypes(_Proto, _Iface, _Flags, _Port, _flags, _num, _int, Unsupported)


def _in_set(have: object | tuple[object, ...], elements: tuple[Element, ...]) -> Element | None:
    """The first element (in the order written) whose key matches, hashed for big sets (`nftables/lookup.py`)."""
    return lookup.find(have if isinstance(have, tuple) else (have,), elements, _eq, _VALUE_TYPES)


def _elements(right: AnonSet | SetRef, table: NftTable) -> tuple[Element, ...]:
    if isinstance(right, AnonSet):
        return right.elements
    s = table.set(right.name)
    if s is None:
        raise Unsupported(f"set @{right.name} is not in the evidence")
    return s.elements


def _key(e: Expr, p: Packet, j: Journey) -> object | tuple[object, ...]:
    if isinstance(e, Concat):
        return tuple(_value(x, p, j) for x in e.parts)
    return _value(e, p, j)


def match(m: Match, p: Packet, j: Journey, table: NftTable) -> bool:
    """Evaluate one relational expression (raises _Break / Unsupported)."""
    have = _key(m.left, p, j)
    r: Right = m.right
    if isinstance(r, AnonSet | SetRef):
        hit = _in_set(have, _elements(r, table)) is not None
        return hit if m.op == "==" else (not hit if m.op == "!=" else _bad_op(m))
    if isinstance(r, FlagList):
        hit = any(_eq(have, f) for f in r.flags)
        return hit if m.op == "==" else (not hit if m.op == "!=" else _bad_op(m))
    if isinstance(have, _Flags) and not m.explicit_op and not isinstance(m.left, Binop):
        return bool(have & _flags(r.text_))  # `tcp flags syn`: any of these flags is set
    if m.op in ("==", "!="):
        if isinstance(have, str) and m.left == Selector("ct state") and r.text_ not in _CT_STATES:
            raise Unsupported(f"unknown conntrack state {r.text_}")
        hit = _eq(have, r.text_)
        return hit if m.op == "==" else not hit
    if not isinstance(have, int):
        raise Unsupported(f"{m.text()}: ordering on a non-number")
    want = _num(r.text_) if isinstance(have, _Port) else _int(r.text_)
    return {"<": have < want, ">": have > want, "<=": have <= want, ">=": have >= want}[m.op]


def _bad_op(m: Match) -> bool:
    raise Unsupported(f"{m.text()}: operator {m.op} with a set")


# --------------------------------------------------------------------------
# Walking chains
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class BaseChain:
    """An nft base chain registered on a hook, with the table it belongs to."""

    table: NftTable
    chain: NftChain

    @property
    def priority(self) -> int:
        return self.chain.priority or 0

    @property
    def label(self) -> str:
        return f"{self.table.label} {self.chain.name}"


def _step(rule: NftRule, index: int, hook: str, action: StepAction, detail: str, packet: Packet | None = None) -> Step:
    return Step(
        kind=StepKind.RULE_MATCH if action != StepAction.UNSUPPORTED else StepKind.UNSUPPORTED,
        action=action,
        detail=detail,
        hook=hook,
        table=f"{rule.family} {rule.table}",
        chain=rule.chain,
        index=index,
        rule=rule.ref.text if rule.ref is not None else rule.text(),
        source=rule.ref.source if rule.ref else None,
        line=rule.ref.line if rule.ref else None,
        packet=packet,
    )


def walk_base_chain(bc: BaseChain, hook: str, j: Journey, steps: list[Step], budget: WalkBudget) -> TableVerdict:
    """Run one base chain for the packet; its verdict (ACCEPT also when it falls off the end under policy
    accept, or a NAT statement accepted; DROP; UNSUPPORTED)."""
    table, base = bc.table, bc.chain
    where = f"{table.label}"
    steps.append(
        Step(
            StepKind.TABLE,
            StepAction.ENTER,
            f"nft {bc.label} ({base.type} hook {base.hook} priority {bc.priority})",
            hook=hook,
            table=where,
            chain=base.name,
        )
    )
    stack: list[tuple[NftChain, int]] = []
    chain, pos = base, 0
    evaluations = 0
    while True:
        if pos >= len(chain.rules):
            if not stack:
                policy = (base.policy or "accept").lower()
                steps.append(
                    Step(
                        StepKind.POLICY,
                        StepAction.ACCEPT if policy == "accept" else StepAction.DROP,
                        f"policy of nft {bc.label}: {policy}",
                        hook=hook,
                        table=where,
                        chain=base.name,
                    )
                )
                if policy == "accept":
                    return TableVerdict("ACCEPT", f"policy of {bc.label}")
                return TableVerdict("DROP", f"dropped by the {policy} policy of nft {bc.label}")
            back, back_pos = stack.pop()
            steps.append(
                Step(
                    StepKind.RETURN,
                    StepAction.RETURN,
                    f"end of {chain.name}: back to {back.name}",
                    hook=hook,
                    table=where,
                    chain=chain.name,
                )
            )
            chain, pos = back, back_pos
            continue
        rule = chain.rules[pos]
        pos += 1
        evaluations += 1
        budget.used += 1
        if evaluations > budget.per_walk or budget.used > budget.per_trace:
            per = "walk" if evaluations > budget.per_walk else "trace"
            limit = rule_budget_reached(
                bc.label if per == "walk" else "this packet's trace",
                budget.per_walk if per == "walk" else budget.per_trace,
                per,
            )
            steps.append(
                Step(StepKind.LIMIT, StepAction.UNSUPPORTED, str(limit), hook=hook, table=where, chain=chain.name)
            )
            return TableVerdict("UNSUPPORTED", str(limit))
        out = run_rule(rule, pos, hook, j, steps, table)
        if out is None:
            continue
        if isinstance(out, TableVerdict):
            return out
        k = out.kind
        if k == "continue":
            continue
        if k == "accept":
            return TableVerdict("ACCEPT", f"accepted by nft {table.label} {chain.name} rule {pos}")
        if k == "drop":
            return TableVerdict("DROP", f"dropped by nft {table.label} {chain.name} rule {pos}")
        if k == "return":
            if not stack:
                # return from a base chain: its policy decides.
                pos = len(chain.rules)
                continue
            chain, pos = stack.pop()
            continue
        if k in ("jump", "goto"):
            target = table.chain(out.chain or "")
            if target is None:
                steps.append(_step(rule, pos, hook, StepAction.UNSUPPORTED, f"{k} to unknown chain {out.chain}"))
                return TableVerdict("UNSUPPORTED", f"{k} to unknown chain {out.chain}")
            if k == "jump":
                if len(stack) >= budget.jump_depth:
                    limit = jump_depth_reached(target.name, budget.jump_depth)
                    steps.append(
                        Step(
                            StepKind.LIMIT, StepAction.UNSUPPORTED, str(limit), hook=hook, table=where, chain=chain.name
                        )
                    )
                    return TableVerdict("UNSUPPORTED", str(limit))
                stack.append((chain, pos))
            chain, pos = target, 0
            continue
        steps.append(_step(rule, pos, hook, StepAction.UNSUPPORTED, f"verdict {k} is not modelled"))
        return TableVerdict("UNSUPPORTED", f"nft {table.label} {chain.name} rule {pos}: verdict {k} not modelled")


def _later_match_fails(rule: NftRule, after: int, p: Packet, j: Journey, table: NftTable) -> bool:
    for s in rule.statements[after + 1 :]:
        if isinstance(s, Match):
            try:
                if not match(s, p, j, table):
                    return True
            except (_Break, Unsupported):
                continue
    return False


def run_rule(
    rule: NftRule, index: int, hook: str, j: Journey, steps: list[Step], table: NftTable
) -> Verdict | TableVerdict | None:
    """Run one rule: None when it ends without a verdict (a match failed, or it only had effects), a Verdict
    for flow control, a TableVerdict when a statement decided the packet's fate here (NAT, drop, unsupported)."""
    did_something = False
    for n, s in enumerate(rule.statements):
        p = j.packet
        try:
            if isinstance(s, Match):
                if not match(s, p, j, table):
                    return _ended(rule, index, hook, steps, did_something, None)
                continue
            if isinstance(s, Verdict):
                verb = _VERDICT_ACTION.get(s.kind, StepAction.CONTINUE)
                steps.append(_step(rule, index, hook, verb, s.text()))
                return s
            if isinstance(s, Vmap):
                if isinstance(s.key, Selector) and s.key.key.startswith("numgen random"):
                    el = _numgen(s.key.key, _elements(s.map, table), rule, j)
                else:
                    el = _in_set(_key(s.key, p, j), _elements(s.map, table))
                if el is None or not isinstance(el.data, Verdict):
                    return _ended(rule, index, hook, steps, did_something, "no element of the verdict map matches")
                v = el.data
                verb = _VERDICT_ACTION.get(v.kind, StepAction.CONTINUE)
                steps.append(_step(rule, index, hook, verb, f"verdict map: {el.text()}"))
                return v
            if isinstance(s, SetStmt):
                did_something = True
                _set(s, rule, index, hook, j, steps)
                continue
            if isinstance(s, Tproxy):
                ok, why = _tproxy(s, j)
                if not ok:
                    steps.append(
                        _step(
                            rule,
                            index,
                            hook,
                            StepAction.CONTINUE,
                            f"no transparent socket for nft's tproxy ({why}); tproxy is not a verdict: "
                            "the rule ends and the chain goes on",
                            j.packet,
                        )
                    )
                    return None
                did_something = True
                steps.append(_step(rule, index, hook, StepAction.CONTINUE, why, j.packet))
                continue
            if isinstance(s, Nat):
                return _nat(s, rule, index, hook, j, steps)
            if isinstance(s, Simple):
                if s.kind == "notrack":
                    j.set_notrack()
                    did_something = True
                    steps.append(_step(rule, index, hook, StepAction.CONTINUE, "notrack: conntrack skips this packet"))
                elif s.kind == "log":
                    steps.append(_step(rule, index, hook, StepAction.CONTINUE, "log: logged, continues"))
                continue
            if isinstance(s, Unmodelled):
                if _later_match_fails(rule, n, p, j, table):
                    return _ended(rule, index, hook, steps, did_something, None)
                raise Unsupported(f"{s.why}: {s.text()}")
            # Counter
        except _Break:
            return _ended(rule, index, hook, steps, did_something, None)
        except Unsupported as e:
            steps.append(_step(rule, index, hook, StepAction.UNSUPPORTED, e.reason))
            return TableVerdict("UNSUPPORTED", f"nft {rule.family} {rule.table} {rule.chain} rule {index}: {e.reason}")
    if not did_something:
        steps.append(_step(rule, index, hook, StepAction.CONTINUE, "matched (no verdict: counters only)"))
    return None


def _numgen(key: str, elements: tuple[Element, ...], rule: NftRule, j: Journey) -> Element | None:
    """`numgen random mod N [offset M] vmap { ... }`: a random pick, explored as branches (as iptables'
    `statistic`): each value in turn is taken or not, the last one when none was."""
    words = key.split()
    n = int(words[3])
    offset = int(words[5]) if len(words) > 5 else 0
    values = list(range(offset, offset + n))
    for v in values:
        el = _in_set(v, elements)
        if v == values[-1] or j.choose(rule, f"{key} gives {v}"):  # type: ignore[arg-type]  # choose reads table/chain
            return el
    return None


def _ended(rule: NftRule, index: int, hook: str, steps: list[Step], did: bool, why: str | None) -> Verdict | None:
    if did or why:
        steps.append(
            _step(
                rule,
                index,
                hook,
                StepAction.CONTINUE,
                why or "a match fails: the rule ends here (its earlier statements took effect)",
            )
        )
    return None  # the rule ends without a verdict: the next rule runs


def _set(s: SetStmt, rule: NftRule, index: int, hook: str, j: Journey, steps: list[Step]) -> None:
    p = j.packet
    key = s.target.key
    if key == "ct zone":
        zone = _value(s.value, p, j)
        assert isinstance(zone, int)
        j.set_ct_zone(zone)
        steps.append(_step(rule, index, hook, StepAction.CONTINUE, f"conntrack zone {zone}"))
        return
    new = _value(s.value, p, j)
    if not isinstance(new, int):
        raise Unsupported(f"{s.text()}: not a number")
    new &= 0xFFFFFFFF
    if key == "meta mark":
        old = p.mark
        j.set_mark(new)
        # `meta mark set ct mark` is CONNMARK --restore-mark: said with the same words
        what = "restore connection mark: packet mark" if _reads_ct_mark(s.value) else "mark"
        steps.append(_step(rule, index, hook, StepAction.CONTINUE, f"{what} {old:#x} -> {new:#x}", j.packet))
        return
    if key == "ct mark":
        ct = j.ct_mark()
        if ct is None:
            steps.append(_step(rule, index, hook, StepAction.CONTINUE, "ct mark set: no connection, no effect"))
            return
        j.set_ct_mark(new)
        steps.append(_step(rule, index, hook, StepAction.CONTINUE, f"ctmark {ct:#x} -> {new:#x}", j.packet))
        return
    raise Unsupported(f"setting {key} is not modelled")


def _reads_ct_mark(e: Expr) -> bool:
    return e == Selector("ct mark") or (isinstance(e, Binop) and _reads_ct_mark(e.left))


def _tproxy(s: Tproxy, j: Journey) -> tuple[bool, str]:
    p = j.packet
    if _other_family(s.family, p):
        raise _Break
    if p.protocol not in ("tcp", "udp"):
        raise _Break
    on_ip = parse_ip(s.addr) if s.addr else None
    if on_ip is not None and on_ip.is_unspecified:
        on_ip = None
    return j.tproxy(on_ip, s.port or p.dport, 0, 0)


def _nat(s: Nat, rule: NftRule, index: int, hook: str, j: Journey, steps: list[Step]) -> TableVerdict:
    before = j.packet
    if _other_family(s.family, before):
        raise _Break
    if s.kind == "redirect":
        addr = j.redirect_address()
        if addr is None:
            why = "redirect: the incoming interface has no address, the kernel drops the packet"
            steps.append(_step(rule, index, hook, StepAction.DROP, why))
            return TableVerdict("DROP", why)
        res = j.nat("DST", addr, s.port, "redirect")
    elif s.kind == "masquerade":
        addr = j.masquerade_address()
        if addr is None:
            why = "masquerade: the outgoing interface has no address, the kernel drops the packet"
            steps.append(_step(rule, index, hook, StepAction.DROP, why))
            return TableVerdict("DROP", why)
        res = j.nat("SRC", addr, s.port, "masquerade")
    else:
        a = s.addr.split("-")[0] if s.addr else None
        try:
            addr_ip = parse_ip(a) if a else None
        except ValueError as e:
            raise Unsupported(f"{s.kind} to {s.addr}: not an address") from e
        res = j.nat("DST" if s.kind == "dnat" else "SRC", addr_ip, s.port, s.kind)
    if isinstance(res, str):
        steps.append(_step(rule, index, hook, StepAction.DROP, res))
        return TableVerdict("DROP", res)
    change = describe_change(before, res)
    # The detail starts with the iptables target's name, as the story reads captures from it.
    steps.append(_step(rule, index, hook, StepAction.TRANSFORM, f"{s.kind.upper()} (nft {s.kind}): {change}", res))
    return TableVerdict("ACCEPT", f"{s.kind} {change}")
