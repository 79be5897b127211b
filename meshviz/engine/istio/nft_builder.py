"""An `nft -f` rule builder the way Istio's nftables backend builds its transactions.

Istio's `tools/istio-nftables/pkg/builder` keeps an ordered list of rules per table (`AppendRule`,
`InsertRule`, and `...V6RuleIfSupported` variants that do nothing without IPv6); the caller then turns
them into one knftables transaction per table: `add table`, `flush table`, an `add chain` for every
declared chain that is used, then `add rule` / `insert rule ... index N` in build order.  knftables
prints the transaction as an `nft -f` script, which is what Istio's goldens record.

    b = NftRuleBuilder(ipv6=True)
    b.append("istio-proxy-nat", "output", "counter", "jump", "istio-output")
    ops = table_operations("istio-proxy-nat", chains, b.rules_of("istio-proxy-nat"), policy=CAPTURE_INDEX_POLICY)
    script_text(ops)                     # "add table inet istio-proxy-nat\\n..."
    NftState().apply(ops).dump()         # the tables afterwards, as knftables' fake `Dump()` prints them

Rule text is the parameters joined by single spaces and nothing else (knftables' `Concat`), so a
parameter ending in a blank gives the double blanks some of Istio's goldens have.

Pure Python; Istio's Go code was read to understand the order and syntax, none is copied.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Literal, TypeAlias

__all__ = [
    "NAMED_PRIORITIES",
    "IndexPolicy",
    "NftChain",
    "NftOperation",
    "NftRule",
    "NftRuleBuilder",
    "NftState",
    "NftTable",
    "concat",
    "rule_operations",
    "script_text",
    "table_operations",
    "undeclared_jumps",
]

#: Every Istio table is in the `inet` family (both IPv4 and IPv6 in one table).
INET = "inet"

#: knftables' named base-chain priorities, as the numbers it writes for the inet family.
NAMED_PRIORITIES: dict[str, int] = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "srcnat": 100}


def concat(*params: str) -> str:
    """knftables' `Concat` for strings: the parameters joined by one blank each, nothing trimmed."""
    return " ".join(params)


@dataclass(frozen=True)
class NftTable:
    name: str
    family: str = INET

    def spec(self) -> str:
        return f"table {self.family} {self.name}"


@dataclass(frozen=True)
class NftChain:
    """A chain; a base chain has a type, a hook and a priority."""

    table: str
    name: str
    type: str | None = None
    hook: str | None = None
    priority: int | None = None
    family: str = INET

    @property
    def is_base(self) -> bool:
        return self.type is not None

    def spec(self) -> str:
        text = f"chain {self.family} {self.table} {self.name}"
        if self.type is not None:
            text += f" {{ type {self.type} hook {self.hook} priority {self.priority} ; }}"
        return text


@dataclass(frozen=True)
class NftRule:
    """A rule for `chain` of `table`; `index` set means "insert at this position" (0 is the head)."""

    table: str
    chain: str
    rule: str
    index: int | None = None
    family: str = INET

    def spec(self) -> str:
        where = f"rule {self.family} {self.table} {self.chain}"
        if self.index is not None:
            where += f" index {self.index}"
        return f"{where} {self.rule}"


Verb: TypeAlias = Literal["add", "flush", "insert"]


@dataclass(frozen=True)
class NftOperation:
    """One line of an `nft -f` script."""

    verb: Verb
    obj: NftTable | NftChain | NftRule

    def text(self) -> str:
        return f"{self.verb} {self.obj.spec()}"


def script_text(operations: Iterable[NftOperation]) -> str:
    """The operations as an `nft -f` script, one per line, each ending in a newline."""
    return "".join(op.text() + "\n" for op in operations)


class NftRuleBuilder:
    """Rules per table in build order, like Istio's `NftablesRuleBuilder`."""

    def __init__(self, ipv6: bool):
        self.ipv6 = ipv6
        self._rules: dict[str, list[NftRule]] = {}

    def append(self, table: str, chain: str, *params: str) -> None:
        self._rules.setdefault(table, []).append(NftRule(table, chain, concat(*params)))

    def insert(self, table: str, chain: str, index: int, *params: str) -> None:
        self._rules.setdefault(table, []).append(NftRule(table, chain, concat(*params), index))

    def append_v6(self, table: str, chain: str, *params: str) -> None:
        """`AppendV6RuleIfSupported`: only when IPv6 is enabled."""
        if self.ipv6:
            self.append(table, chain, *params)

    def insert_v6(self, table: str, chain: str, index: int, *params: str) -> None:
        """`InsertV6RuleIfSupported`: only when IPv6 is enabled."""
        if self.ipv6:
            self.insert(table, chain, index, *params)

    def rules_of(self, table: str) -> tuple[NftRule, ...]:
        return tuple(self._rules.get(table, ()))


class IndexPolicy(StrEnum):
    """When an insertion is written as a plain `add rule` (nft refuses some indexes).

    * ``clamp``: into an empty chain, or at or past the chain's length (sidecar capture and the builder);
    * ``empty-only``: only into an empty chain (ambient in-pod rules).
    """

    CLAMP = "clamp"
    EMPTY_ONLY = "empty-only"


def _jump_targets(rules: Sequence[NftRule]) -> set[str]:
    targets: set[str] = set()
    for rule in rules:
        words = rule.rule.split()
        targets.update(words[i + 1] for i, word in enumerate(words[:-1]) if word == "jump")
    return targets


def undeclared_jumps(operations: Iterable[NftOperation]) -> tuple[tuple[str, str, str], ...]:
    """(table, chain, target) of every rule that jumps to a chain the script does not declare in its table:
    nft rejects such a script as a whole ("No such file or directory")."""
    declared = {(op.obj.table, op.obj.name) for op in operations if isinstance(op.obj, NftChain)}
    out: list[tuple[str, str, str]] = []
    for op in operations:
        if isinstance(op.obj, NftRule):
            for target in sorted(_jump_targets([op.obj])):
                if (op.obj.table, target) not in declared:
                    out.append((op.obj.table, op.obj.chain, target))
    return tuple(out)


def table_operations(
    table: str,
    chains: Sequence[NftChain],
    rules: Sequence[NftRule],
    *,
    policy: IndexPolicy = IndexPolicy.CLAMP,
    declare_jump_targets: bool = False,
) -> tuple[NftOperation, ...]:
    """One table's transaction: add, flush, its used chains in declared order, then the rules.

    A chain is used when it has rules (or, with `declare_jump_targets`, when a rule jumps to it); a
    table without used chains gives no operations at all.  Insertions the kernel would refuse become
    appends according to `policy`.
    """
    counts: dict[str, int] = {}
    for rule in rules:
        counts[rule.chain] = counts.get(rule.chain, 0) + 1
    targets = _jump_targets(rules) if declare_jump_targets else set()
    used = [c for c in chains if counts.get(c.name) or c.name in targets]
    if not used:
        return ()
    ops: list[NftOperation] = [NftOperation("add", NftTable(table)), NftOperation("flush", NftTable(table))]
    ops += [NftOperation("add", c) for c in used]
    return (*ops, *rule_operations(rules, policy=policy))


def rule_operations(rules: Sequence[NftRule], *, policy: IndexPolicy = IndexPolicy.CLAMP) -> tuple[NftOperation, ...]:
    """`add rule` / `insert rule ... index N` per rule in build order, the chains starting empty.

    An insertion into a chain that has no rule yet (and, with the ``clamp`` policy, one at or past the
    number of rules added so far) is written as an append, as Istio does because nft refuses it.
    """
    ops: list[NftOperation] = []
    seen: dict[str, int] = {}
    for rule in rules:
        have = seen.get(rule.chain, 0)
        index = rule.index
        if index is not None and (have == 0 or (policy == IndexPolicy.CLAMP and index >= have)):
            index = None
        verb: Verb = "add" if index is None else "insert"
        ops.append(NftOperation(verb, replace(rule, index=index)))
        seen[rule.chain] = have + 1
    return tuple(ops)


@dataclass
class _TableState:
    table: NftTable
    chains: dict[str, NftChain] = field(default_factory=dict)
    rules: dict[str, list[str]] = field(default_factory=dict)


class NftState:
    """The tables after a script ran, as far as `add`/`flush`/`insert` of tables, chains and rules go.

    As nft does: `insert rule ... index N` puts the rule in front of the rule at position N (0-based),
    `add rule ... index N` after it; without an index `add` appends and `insert` prepends; `flush table`
    empties every chain of the table.  Problems (a chain that does not exist, an index past the end) are
    collected in `errors`, the operation skipped.
    """

    def __init__(self) -> None:
        self._tables: dict[tuple[str, str], _TableState] = {}
        self.errors: list[str] = []

    def apply(self, operations: Iterable[NftOperation]) -> NftState:
        for op in operations:
            self._apply(op)
        return self

    def _apply(self, op: NftOperation) -> None:
        obj = op.obj
        if isinstance(obj, NftTable):
            key = (obj.family, obj.name)
            if op.verb == "add":
                self._tables.setdefault(key, _TableState(obj))
            elif key in self._tables:
                for flushed in self._tables[key].rules.values():
                    flushed.clear()
            else:
                self.errors.append(f"{op.text()}: no such table")
            return
        state = self._tables.get((obj.family, obj.table))
        if state is None:
            self.errors.append(f"{op.text()}: no such table")
            return
        if isinstance(obj, NftChain):
            state.chains.setdefault(obj.name, obj)
            state.rules.setdefault(obj.name, [])
            return
        chain_rules = state.rules.get(obj.chain)
        if chain_rules is None:
            self.errors.append(f"{op.text()}: no such chain")
        elif obj.index is None:
            # `add` without a position appends, `insert` without one puts the rule at the head.
            chain_rules.insert(len(chain_rules) if op.verb == "add" else 0, obj.rule)
        elif obj.index >= len(chain_rules):
            self.errors.append(f"{op.text()}: index {obj.index} is past the end of the chain")
        else:
            # `insert ... index N` goes in front of rule N, `add ... index N` after it.
            chain_rules.insert(obj.index + (op.verb == "add"), obj.rule)

    def rules(self, table: str, chain: str, family: str = INET) -> tuple[str, ...]:
        """The chain's rules in order, as rule text."""
        state = self._tables.get((family, table))
        return tuple(state.rules.get(chain, ())) if state else ()

    def chains(self, table: str, family: str = INET) -> tuple[NftChain, ...]:
        state = self._tables.get((family, table))
        return tuple(state.chains.values()) if state else ()

    def dump(self) -> str:
        """Every table as an `nft -f` script that recreates it: the table, its chains by name, then each
        chain's rules in order (the layout of knftables' fake `Dump()`, which Istio's builder goldens record)."""
        ops: list[NftOperation] = []
        for key in sorted(self._tables):
            state = self._tables[key]
            ops.append(NftOperation("add", state.table))
            names = sorted(state.chains)
            ops += [NftOperation("add", state.chains[name]) for name in names]
            for name in names:
                ops += [
                    NftOperation("add", NftRule(state.table.name, name, r, family=key[0])) for r in state.rules[name]
                ]
        return script_text(ops)
