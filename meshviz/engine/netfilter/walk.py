"""Walk a netfilter table's chains for one packet at one hook.

The ruleset is compiled once (`CompiledRuleset`): every rule's criteria
become predicates (see `matches.py`) and its target becomes an `Action`.
Long chains get an index on exact destination addresses, so a packet to one
of 10,000 kube-proxy service IPs looks at a handful of rules, not all of them
(the order of the rules it does look at is preserved).

Targets that need the rest of the kernel (NAT bindings, TPROXY socket
assignment, conntrack marks and zones) call back into the `Journey`
protocol, implemented by the simulator.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Protocol

from meshviz.engine.core.gcpause import gc_paused
from meshviz.engine.core.limits import (
    MAX_JUMP_DEPTH,
    MAX_RULE_EVALUATIONS_PER_TRACE,
    MAX_RULE_EVALUATIONS_PER_WALK,
    LimitReached,
    jump_depth_reached,
    rule_budget_reached,
)
from meshviz.engine.core.model import IPAddress, Packet
from meshviz.engine.core.netaddr import parse_ip
from meshviz.engine.core.trace import Step, StepAction, StepKind
from meshviz.engine.netfilter.matches import (
    CompiledMatch,
    EvalEnv,
    MatchCompileError,
    Unmodelled,
    compile_rule,
    parse_int,
    parse_mark,
)
from meshviz.engine.netfilter.model import Chain, Rule, Ruleset
from meshviz.engine.netfilter.render import rule_text


class Journey(EvalEnv, Protocol):
    """What targets need from the simulator for the packet being walked."""

    def nat(self, manip: str, addr: IPAddress | None, port: int | None, what: str) -> Packet | str:
        """Set up a NAT binding (manip "DST" or "SRC").  Returns the new packet or an error string."""

    def redirect_address(self) -> IPAddress | None:
        """The address REDIRECT rewrites to at the current hook (None: the kernel drops)."""

    def masquerade_address(self) -> IPAddress | None: ...

    def tproxy(self, on_ip: IPAddress | None, on_port: int, mark: int, mask: int) -> tuple[bool, str]:
        """Assign the packet to a transparent socket.  (ok, explanation)."""

    def set_mark(self, mark: int) -> None: ...

    def ct_mark(self) -> int | None:
        """The connection's mark, or None when the packet has no conntrack entry."""

    def set_ct_mark(self, mark: int) -> None: ...

    def set_ct_zone(self, zone: int) -> None: ...

    def set_notrack(self) -> None: ...

    @property
    def packet(self) -> Packet: ...


# --------------------------------------------------------------------------
# Actions (compiled targets)
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    kind: str  # ACCEPT DROP REJECT RETURN JUMP GOTO MARK CONNMARK REDIRECT DNAT SNAT MASQUERADE TPROXY CT LOG
    # NOTE / UNSUPPORTED / UNSUPPORTED_CONT (non-terminating, no modelled effect) / NONE
    chain: str | None = None
    params: tuple[tuple[str, str], ...] = ()

    def get(self, key: str, default: str | None = None) -> str | None:
        for k, v in self.params:
            if k == key:
                return v
        return default


_TERMINATING_UNSUPPORTED = {"QUEUE", "NFQUEUE", "SYNPROXY", "MIRROR", "NETMAP", "CLUSTERIP", "TEE"}
_LOGGING = {"LOG", "NFLOG", "ULOG", "TRACE"}
_NO_PATH_EFFECT = {
    "CLASSIFY": "sets the traffic-control class",
    "DSCP": "rewrites the DSCP field",
    "TOS": "rewrites the TOS field",
    "TTL": "rewrites the TTL",
    "HL": "rewrites the hop limit",
    "TCPMSS": "clamps the TCP MSS option",
    "CHECKSUM": "fills in a checksum",
    "CONNSECMARK": "copies security marks",
    "SECMARK": "sets a security mark",
    "AUDIT": "writes an audit record",
    "IDLETIMER": "arms an idle timer",
    "LED": "blinks an LED",
    "SET": "adds/removes addresses in an ipset",
    "ECN": "rewrites ECN bits",
    "TCPOPTSTRIP": "strips TCP options",
    "RATEEST": "estimates a rate",
}


def compile_target(rule: Rule, chains: set[str]) -> Action:
    t = rule.target
    if t is None:
        return Action("NONE")
    name = t.name
    opts = {o.name: " ".join(o.values) for o in t.options}
    params = tuple(sorted(opts.items()))
    if t.goto:
        return Action("GOTO", chain=name)
    if name in chains:
        return Action("JUMP", chain=name)
    if name in ("ACCEPT", "DROP", "RETURN"):
        return Action(name)
    if name == "REJECT":
        return Action("REJECT", params=params)
    if name in ("MARK", "CONNMARK", "REDIRECT", "DNAT", "SNAT", "MASQUERADE", "TPROXY", "CT"):
        return Action(name, params=params)
    if name == "NOTRACK":
        return Action("CT", params=(("notrack", ""),))
    if name in _LOGGING:
        return Action("LOG", params=(*params, ("target", name)))
    if name in _NO_PATH_EFFECT:
        return Action("UNSUPPORTED_CONT", params=(("target", name), ("why", _NO_PATH_EFFECT[name])))
    if name in _TERMINATING_UNSUPPORTED:
        return Action("UNSUPPORTED", params=(("target", name),))
    return Action("UNSUPPORTED", params=(("target", name),))


# --------------------------------------------------------------------------
# Compiled rules and chains
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class CompiledRule:
    rule: Rule
    index: int  # 1-based position in its chain
    match: CompiledMatch | None  # None: the criteria could not be compiled (see error)
    action: Action
    error: str | None = None


@dataclass
class CompiledChain:
    """A chain whose rules are compiled lazily, the first time a packet reaches them."""

    table: str
    name: str
    builtin: bool
    policy: str | None
    rules: list[Rule]
    chain_names: set[str]
    general: list[int]  # rule positions (0-based) without an exact destination
    by_dst: dict[IPAddress, list[int]] | None  # exact-destination index (long chains only)
    compiled: list[CompiledRule | None]

    def rule(self, pos: int) -> CompiledRule:
        cr = self.compiled[pos]
        if cr is None:
            cr = compile_one(self.rules[pos], pos + 1, self.chain_names)
            self.compiled[pos] = cr
        return cr

    def candidates(self, dst: IPAddress) -> Iterator[int]:
        if self.by_dst is None:
            return iter(range(len(self.rules)))
        specific = self.by_dst.get(dst)
        if not specific:
            return iter(self.general)
        return heapq.merge(self.general, specific)


INDEX_THRESHOLD = 32


def _exact_dst(rule: Rule) -> IPAddress | None:
    d = rule.dst
    if d is None or d.negated:
        return None
    if d.network.prefixlen == d.network.max_prefixlen:
        return d.network.network_address
    return None


def compile_one(rule: Rule, index: int, chain_names: set[str]) -> CompiledRule:
    action = compile_target(rule, chain_names)
    try:
        return CompiledRule(rule, index, compile_rule(rule), action)
    except MatchCompileError as e:
        return CompiledRule(rule, index, None, action, str(e))


class CompiledRuleset:
    """A ruleset indexed for simulation.  Building it costs nothing: a chain is indexed the first time a packet
    reaches it (its rules read, the exact-destination index of a long chain built), and its rules compile on first
    use - so a story through a node-sized ruleset reads the few chains its packets traverse, not all of them."""

    def __init__(self, ruleset: Ruleset):
        self.ruleset = ruleset
        self.chains: dict[tuple[str, str], CompiledChain | None] = {}
        self._tables: dict[str, tuple[dict[str, Chain], set[str]] | None] = {}

    def _table(self, table: str) -> tuple[dict[str, Chain], set[str]] | None:
        if table not in self._tables:
            t = self.ruleset.table(table)
            by_name = {c.name: c for c in t.chains} if t is not None else None
            self._tables[table] = (by_name, set(by_name)) if by_name is not None else None
        return self._tables[table]

    def chain(self, table: str, name: str) -> CompiledChain | None:
        key = (table, name)
        if key in self.chains:
            return self.chains[key]
        found = self._table(table)
        chain = found[0].get(name) if found is not None else None
        compiled = _index_chain(table, chain, found[1]) if found is not None and chain is not None else None
        self.chains[key] = compiled
        return compiled


def _index_chain(table: str, chain: Chain, names: set[str]) -> CompiledChain:
    with gc_paused():
        rules = list(chain.rules)
        by_dst: dict[IPAddress, list[int]] | None = None
        general = list(range(len(rules)))
        if len(rules) > INDEX_THRESHOLD:
            by_dst, general = {}, []
            for pos, rule in enumerate(rules):
                addr = _exact_dst(rule)
                if addr is None:
                    general.append(pos)
                else:
                    by_dst.setdefault(addr, []).append(pos)
        return CompiledChain(
            table, chain.name, chain.builtin, chain.policy, rules, names, general, by_dst, [None] * len(rules)
        )


# --------------------------------------------------------------------------
# The walk
# --------------------------------------------------------------------------


@dataclass
class TableVerdict:
    verdict: str  # ACCEPT, DROP, REJECT, UNSUPPORTED
    detail: str = ""
    reject_with: str | None = None


def _rule_step(cr: CompiledRule, hook: str, action: StepAction, detail: str, packet: Packet | None = None) -> Step:
    r = cr.rule
    return Step(
        kind=StepKind.RULE_MATCH,
        action=action,
        detail=detail,
        hook=hook,
        table=r.table,
        chain=r.chain,
        index=cr.index,
        rule=rule_text(r),
        source=r.ref.source if r.ref else None,
        line=r.ref.line if r.ref else None,
        packet=packet,
    )


@dataclass
class WalkBudget:
    """Rule evaluations one packet's trace has used so far (shared by every table walk of that trace)."""

    used: int = 0
    per_walk: int = MAX_RULE_EVALUATIONS_PER_WALK
    per_trace: int = MAX_RULE_EVALUATIONS_PER_TRACE
    jump_depth: int = MAX_JUMP_DEPTH


@dataclass(frozen=True)
class _Call:
    """A pending user-chain call: where it started, so that a call that changed nothing can be memoised."""

    chain: str
    generation: int
    first_step: int


# Actions that cannot change the packet, the connection or the sockets: a call made only of these is pure.
_NO_STATE_CHANGE = frozenset({"LOG", "UNSUPPORTED_CONT"})


def _limit_step(limit: LimitReached, hook: str, table: str, chain: str, steps: list[Step]) -> TableVerdict:
    steps.append(Step(StepKind.LIMIT, StepAction.UNSUPPORTED, str(limit), hook=hook, table=table, chain=chain))
    return TableVerdict("UNSUPPORTED", str(limit))


def walk_table(
    crs: CompiledRuleset,
    table: str,
    hook: str,
    journey: Journey,
    steps: list[Step],
    budget: WalkBudget | None = None,
) -> TableVerdict:
    """Run `table`'s base chain for `hook`.  Appends steps; mutates the journey's packet via callbacks.

    Bounded: at most `budget.per_walk` rule evaluations here, `budget.per_trace` over the packet's whole trace and
    `budget.jump_depth` nested calls; past a bound the walk ends in a `StepKind.LIMIT` step.  A user-chain call that
    returned without changing anything (no target with an effect, no statistic branch) is memoised: jumping to the
    same chain again before anything changed gives the same result, so it is recorded in one step instead of being
    walked again (this is what keeps "every chain jumps twice to the next" linear instead of exponential).
    """
    budget = budget if budget is not None else WalkBudget()
    base = crs.chain(table, hook)
    if base is None:
        return TableVerdict("ACCEPT", "table has no such chain")
    steps.append(Step(StepKind.TABLE, StepAction.ENTER, f"{table} {hook}", hook=hook, table=table, chain=hook))
    # Frames: (chain, iterator over candidate rule positions, the call that left this frame)
    stack: list[tuple[CompiledChain, Iterator[int], _Call]] = []
    generation = 0  # bumped by every target with an effect; memo entries of older generations are stale
    memo: dict[tuple[str, int], int] = {}  # (chain called, generation) -> step index of the call's first step
    evaluations = 0
    chain = base
    it = chain.candidates(journey.packet.dst)

    def back_to_caller() -> tuple[CompiledChain, Iterator[int]]:
        caller, caller_it, call = stack.pop()
        if call.generation == generation and not any(s.kind == StepKind.BRANCH for s in steps[call.first_step :]):
            memo[(call.chain, generation)] = call.first_step
        return caller, caller_it

    while True:
        pos = next(it, None)
        if pos is None:
            # End of chain: implicit return, or the policy of a built-in chain.
            if not stack:
                return _policy(chain, hook, steps)
            steps.append(
                Step(
                    StepKind.RETURN,
                    StepAction.RETURN,
                    f"end of {chain.name}: back to {stack[-1][0].name}",
                    hook=hook,
                    table=table,
                    chain=chain.name,
                )
            )
            chain, it = back_to_caller()
            continue
        evaluations += 1
        budget.used += 1
        if evaluations > budget.per_walk:
            return _limit_step(
                rule_budget_reached(f"{table} {hook}", budget.per_walk, "walk"), hook, table, chain.name, steps
            )
        if budget.used > budget.per_trace:
            return _limit_step(
                rule_budget_reached("this packet's trace", budget.per_trace, "trace"), hook, table, chain.name, steps
            )
        cr = chain.rule(pos)
        if cr.match is None:
            steps.append(_rule_step(cr, hook, StepAction.UNSUPPORTED, f"rule cannot be evaluated: {cr.error}"))
            return TableVerdict("UNSUPPORTED", f"{table}/{chain.name} rule {cr.index}: {cr.error}")
        try:
            matched = all(check(journey.packet, journey) for check in cr.match.checks)
        except Unmodelled as e:
            steps.append(_rule_step(cr, hook, StepAction.UNSUPPORTED, e.reason))
            return TableVerdict("UNSUPPORTED", f"{table}/{chain.name} rule {cr.index}: {e.reason}")
        if not matched:
            continue
        if cr.match.unmodelled:
            reason = cr.match.unmodelled[0]
            steps.append(_rule_step(cr, hook, StepAction.UNSUPPORTED, reason))
            return TableVerdict("UNSUPPORTED", f"{table}/{chain.name} rule {cr.index}: {reason}")
        a = cr.action
        k = a.kind
        if k == "NONE":
            steps.append(_rule_step(cr, hook, StepAction.CONTINUE, "matched (no target: counters only)"))
            continue
        if k in ("JUMP", "GOTO"):
            target = crs.chain(table, a.chain or "")
            if target is None:
                steps.append(_rule_step(cr, hook, StepAction.UNSUPPORTED, f"jump to unknown chain {a.chain}"))
                return TableVerdict("UNSUPPORTED", f"jump to unknown chain {a.chain}")
            if k == "JUMP" and len(stack) >= budget.jump_depth:
                return _limit_step(jump_depth_reached(target.name, budget.jump_depth), hook, table, chain.name, steps)
            if k == "JUMP" and (target.name, generation) in memo:
                first = memo[(target.name, generation)]
                steps.append(
                    _rule_step(
                        cr,
                        hook,
                        StepAction.JUMP,
                        f"jump {target.name}: entered again with the same packet and state, so it returns without "
                        f"changing anything, as it did the first time (step {first} of this hook; not walked again)",
                    )
                )
                continue
            steps.append(
                _rule_step(
                    cr,
                    hook,
                    StepAction.JUMP if k == "JUMP" else StepAction.GOTO,
                    f"{'jump' if k == 'JUMP' else 'goto'} {target.name}",
                )
            )
            if k == "JUMP":
                stack.append((chain, it, _Call(target.name, generation, len(steps) - 1)))
            chain = target
            it = chain.candidates(journey.packet.dst)
            continue
        if k == "RETURN":
            if not stack:
                steps.append(_rule_step(cr, hook, StepAction.RETURN, f"RETURN from built-in chain {chain.name}"))
                return _policy(chain, hook, steps)
            steps.append(_rule_step(cr, hook, StepAction.RETURN, f"return to {stack[-1][0].name}"))
            chain, it = back_to_caller()
            continue
        if k == "ACCEPT":
            steps.append(_rule_step(cr, hook, StepAction.ACCEPT, "ACCEPT"))
            return TableVerdict("ACCEPT", f"{table}/{chain.name} rule {cr.index}")
        if k == "DROP":
            steps.append(_rule_step(cr, hook, StepAction.DROP, "DROP"))
            return TableVerdict("DROP", f"dropped by {table}/{chain.name} rule {cr.index}")
        if k == "REJECT":
            with_ = a.get("reject-with") or "icmp-port-unreachable"
            steps.append(_rule_step(cr, hook, StepAction.REJECT, f"REJECT with {with_}"))
            return TableVerdict("REJECT", f"rejected by {table}/{chain.name} rule {cr.index}", reject_with=with_)
        if k not in _NO_STATE_CHANGE:
            generation += 1
        result = _apply(cr, a, hook, journey, steps)
        if result is not None:
            return result


def _policy(chain: CompiledChain, hook: str, steps: list[Step]) -> TableVerdict:
    policy = chain.policy or "ACCEPT"
    steps.append(
        Step(
            StepKind.POLICY,
            StepAction.ACCEPT if policy == "ACCEPT" else StepAction.DROP,
            f"policy of {chain.table}/{chain.name}: {policy}",
            hook=hook,
            table=chain.table,
            chain=chain.name,
        )
    )
    if policy == "ACCEPT":
        return TableVerdict("ACCEPT", f"policy of {chain.table}/{chain.name}")
    return TableVerdict("DROP", f"dropped by the {policy} policy of {chain.table}/{chain.name}")


def _mark_value(text: str) -> tuple[int, int]:
    return parse_mark(text)


def _apply(cr: CompiledRule, a: Action, hook: str, j: Journey, steps: list[Step]) -> TableVerdict | None:
    """Apply a non-flow-control target.  Returns a verdict if the target is terminating."""
    k = a.kind
    try:
        if k == "MARK":
            old = j.packet.mark
            new = _new_mark(old, a)
            j.set_mark(new)
            steps.append(_rule_step(cr, hook, StepAction.CONTINUE, f"mark {old:#x} -> {new:#x}", j.packet))
            return None
        if k == "CONNMARK":
            _connmark(cr, a, hook, j, steps)
            return None
        if k == "LOG":
            steps.append(_rule_step(cr, hook, StepAction.CONTINUE, f"{a.get('target')}: logged, continues"))
            return None
        if k == "CT":
            if a.get("notrack") is not None:
                j.set_notrack()
                steps.append(_rule_step(cr, hook, StepAction.CONTINUE, "NOTRACK: conntrack skips this packet"))
                return None
            zone = a.get("zone") or a.get("zone-orig") or a.get("zone-reply")
            if zone is not None:
                j.set_ct_zone(parse_int(zone.split()[0]))
                steps.append(_rule_step(cr, hook, StepAction.CONTINUE, f"conntrack zone {zone}"))
                return None
            steps.append(
                _rule_step(cr, hook, StepAction.CONTINUE, "CT template (helper/timeout/events): no path effect")
            )
            return None
        if k in ("REDIRECT", "DNAT", "SNAT", "MASQUERADE"):
            return _nat(cr, a, hook, j, steps)
        if k == "TPROXY":
            on_port = parse_int(a.get("on-port") or "0") or j.packet.dport
            on_ip_s = a.get("on-ip")
            on_ip = parse_ip(on_ip_s) if on_ip_s else None
            if on_ip is not None and on_ip.is_unspecified:
                on_ip = None
            value, mask = _mark_value(a.get("tproxy-mark") or "0/0") if a.get("tproxy-mark") else (0, 0)
            ok, why = j.tproxy(on_ip, on_port, value, mask)
            if not ok:
                steps.append(_rule_step(cr, hook, StepAction.DROP, why, j.packet))
                return TableVerdict("DROP", why)
            steps.append(_rule_step(cr, hook, StepAction.ACCEPT, why, j.packet))
            return TableVerdict("ACCEPT", why)
        if k == "UNSUPPORTED_CONT":
            steps.append(
                Step(
                    StepKind.UNSUPPORTED,
                    StepAction.CONTINUE,
                    f"{a.get('target')} {a.get('why')}: not modelled, cannot change the packet's path",
                    hook=hook,
                    table=cr.rule.table,
                    chain=cr.rule.chain,
                    index=cr.index,
                    rule=rule_text(cr.rule),
                    source=cr.rule.ref.source if cr.rule.ref else None,
                    line=cr.rule.ref.line if cr.rule.ref else None,
                )
            )
            return None
        # UNSUPPORTED and anything else
        reason = f"target {a.get('target') or (cr.rule.target.name if cr.rule.target else '?')} is not modelled"
        steps.append(_rule_step(cr, hook, StepAction.UNSUPPORTED, reason))
        return TableVerdict("UNSUPPORTED", f"{cr.rule.table}/{cr.rule.chain} rule {cr.index}: {reason}")
    except (MatchCompileError, ValueError) as e:
        steps.append(_rule_step(cr, hook, StepAction.UNSUPPORTED, f"cannot interpret target options: {e}"))
        return TableVerdict("UNSUPPORTED", str(e))


def _new_mark(old: int, a: Action) -> int:
    """xt_MARK semantics: mark = (mark & ~mask) ^ value."""
    if (v := a.get("set-xmark")) is not None:
        value, mask = _mark_value(v)
        return (old & ~mask & 0xFFFFFFFF) ^ value
    if (v := a.get("set-mark")) is not None:
        value, mask = _mark_value(v)
        return (old & ~(mask | value) & 0xFFFFFFFF) ^ value
    if (v := a.get("and-mark")) is not None:
        return old & parse_int(v)
    if (v := a.get("or-mark")) is not None:
        return old | parse_int(v)
    if (v := a.get("xor-mark")) is not None:
        return old ^ parse_int(v)
    raise MatchCompileError("MARK needs --set-mark, --set-xmark, --and-mark, --or-mark or --xor-mark")


def _connmark(cr: CompiledRule, a: Action, hook: str, j: Journey, steps: list[Step]) -> None:
    ct = j.ct_mark()
    if ct is None:
        steps.append(_rule_step(cr, hook, StepAction.CONTINUE, "CONNMARK: packet has no conntrack entry, no effect"))
        return None
    mask_all = a.get("mask")
    nfmask = parse_int(a.get("nfmask") or mask_all or "0xffffffff")
    ctmask = parse_int(a.get("ctmask") or mask_all or "0xffffffff")
    if a.get("save-mark") is not None:
        new = ((ct & ~ctmask) ^ (j.packet.mark & nfmask)) & 0xFFFFFFFF
        j.set_ct_mark(new)
        steps.append(
            _rule_step(
                cr,
                hook,
                StepAction.CONTINUE,
                f"save mark {j.packet.mark:#x} to the connection: ctmark {ct:#x} -> {new:#x}",
                j.packet,
            )
        )
        return None
    if a.get("restore-mark") is not None:
        old = j.packet.mark
        new = ((old & ~nfmask) ^ (ct & ctmask)) & 0xFFFFFFFF
        j.set_mark(new)
        steps.append(
            _rule_step(
                cr,
                hook,
                StepAction.CONTINUE,
                f"restore connection mark {ct:#x}: packet mark {old:#x} -> {new:#x}",
                j.packet,
            )
        )
        return None
    for key in ("set-xmark", "set-mark", "and-mark", "or-mark", "xor-mark"):
        if a.get(key) is not None:
            new = _new_mark(ct, Action("MARK", params=((key, a.get(key) or ""),)))
            j.set_ct_mark(new)
            steps.append(_rule_step(cr, hook, StepAction.CONTINUE, f"ctmark {ct:#x} -> {new:#x}", j.packet))
            return None
    raise MatchCompileError("CONNMARK options not understood")


def _nat_target(spec: str) -> tuple[IPAddress | None, int | None]:
    """`ip[-ip][:port[-port]]`, `[v6]:port`, `:port` -> first address/port of the ranges."""
    spec = spec.split()[0] if spec else ""
    addr_s, port_s = spec, ""
    if spec.startswith("["):
        addr_s, _, rest = spec[1:].partition("]")
        port_s = rest[1:] if rest.startswith(":") else ""
    elif spec.count(":") == 1:
        addr_s, _, port_s = spec.partition(":")
    addr = parse_ip(addr_s.split("-")[0]) if addr_s else None
    port = int(port_s.split("-")[0]) if port_s else None
    return addr, port


def _nat(cr: CompiledRule, a: Action, hook: str, j: Journey, steps: list[Step]) -> TableVerdict:
    k = a.kind
    before = j.packet
    if k == "REDIRECT":
        ports = a.get("to-ports") or a.get("to-port")
        port = int(ports.split("-")[0]) if ports else None
        addr = j.redirect_address()
        if addr is None:
            why = "REDIRECT: the incoming interface has no address, the kernel drops the packet"
            steps.append(_rule_step(cr, hook, StepAction.DROP, why))
            return TableVerdict("DROP", why)
        res = j.nat("DST", addr, port, "REDIRECT")
    elif k == "DNAT":
        addr, port = _nat_target(a.get("to-destination") or "")
        res = j.nat("DST", addr, port, "DNAT")
    elif k == "SNAT":
        addr, port = _nat_target(a.get("to-source") or "")
        res = j.nat("SRC", addr, port, "SNAT")
    else:  # MASQUERADE
        ports = a.get("to-ports")
        port = int(ports.split("-")[0]) if ports else None
        addr = j.masquerade_address()
        if addr is None:
            why = "MASQUERADE: the outgoing interface has no address, the kernel drops the packet"
            steps.append(_rule_step(cr, hook, StepAction.DROP, why))
            return TableVerdict("DROP", why)
        res = j.nat("SRC", addr, port, "MASQUERADE")
    if isinstance(res, str):
        steps.append(_rule_step(cr, hook, StepAction.DROP, res))
        return TableVerdict("DROP", res)
    change = describe_change(before, res)
    steps.append(_rule_step(cr, hook, StepAction.TRANSFORM, f"{k}: {change}", res))
    return TableVerdict("ACCEPT", f"{k} {change}")


def describe_change(a: Packet, b: Packet) -> str:
    """What NAT changed between two packets ("source A -> B, destination C -> D"); nftables' NAT says it too."""
    parts = []
    if (a.src, a.sport) != (b.src, b.sport):
        parts.append(f"source {a.src}:{a.sport} -> {b.src}:{b.sport}")
    if (a.dst, a.dport) != (b.dst, b.dport):
        parts.append(f"destination {a.dst}:{a.dport} -> {b.dst}:{b.dport}")
    return ", ".join(parts) or "no change (null binding)"


def with_mark(p: Packet, mark: int) -> Packet:
    return replace(p, mark=mark)
