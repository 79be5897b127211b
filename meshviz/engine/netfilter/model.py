"""The netfilter model: a family's tables, chains and rules, with their matches and targets.

The classes a ruleset holds one of per rule (`Rule`, `Match`, `MatchOption`, `Target`, the criteria; `SourceRef` in
core) use `__slots__`: a kube-proxy ruleset has ~10^5 of each (issue 15: 15% less memory per rule).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from meshviz.engine.core.model import Family, IPNetwork, SourceRef

# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MatchOption:
    """One option of a match, e.g. `! --uid-owner 1337` -> ("uid-owner", ("1337",), True)."""

    name: str
    values: tuple[str, ...] = ()
    negated: bool = False


def find_option(options: tuple[MatchOption, ...], name: str) -> MatchOption | None:
    """The first option called `name` (a match's or a target's)."""
    return next((opt for opt in options if opt.name == name), None)


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class Target:
    """`-j NAME [options]` or `-g CHAIN`.  `goto` marks `-g`."""

    name: str
    options: tuple[MatchOption, ...] = ()
    goto: bool = False

    def option(self, name: str) -> MatchOption | None:
        return find_option(self.options, name)


@dataclass(frozen=True, slots=True)
class AddrCriterion:
    network: IPNetwork
    negated: bool = False


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
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


# --------------------------------------------------------------------------
# Lazily filled chains and tables
# --------------------------------------------------------------------------
# The fast iptables-save parser (netfilter/fastparse.py) builds a big table's chains, and a chain's rules, only when
# they are first read: `Table.chains` and `Chain.rules` are then missing from the instance until the first access
# fills them in from a loader (through the same rule builder as an eager parse, so the values are the same).  Counts
# (`Chain.rule_count()`, `Table.chain_count()`, `Table.rule_count()`) are known without filling anything.  Equality,
# hashing, repr, `dataclasses.replace` and pickling read the fields, so they fill them first and behave exactly as for
# an eagerly built value.


def _make_lazy(cls: type[Any], field_name: str, count: int, load: Callable[[], tuple[Any, ...]], **values: Any) -> Any:
    obj = object.__new__(cls)
    for name, value in values.items():
        object.__setattr__(obj, name, value)
    object.__setattr__(obj, "_lazy", (field_name, count, load))
    return obj


def _fill_lazy(obj: object, name: str) -> Any:
    """The lazily filled field `name` of `obj`, loaded now (called on an attribute not in the instance)."""
    pending = obj.__dict__.get("_lazy")
    if pending is None or pending[0] != name:
        raise AttributeError(f"{type(obj).__name__!r} object has no attribute {name!r}")
    value = pending[2]()
    object.__setattr__(obj, name, value)
    obj.__dict__.pop("_lazy", None)  # another thread may have filled it meanwhile, with an equal value
    return value


def _lazy_count(obj: object, name: str) -> int | None:
    """The length of lazily filled field `name` while it is not filled yet (None once it is, or if never lazy)."""
    pending = obj.__dict__.get("_lazy")
    return pending[1] if pending is not None and pending[0] == name else None


def _reduce(obj: Any) -> tuple[type[Any], tuple[Any, ...]]:
    return type(obj), tuple(getattr(obj, f.name) for f in fields(obj))


@dataclass(frozen=True)
class Chain:
    name: str
    # default_factory, not a default: no class attribute, so a lazy chain's missing `rules` reaches __getattr__
    rules: tuple[Rule, ...] = field(default_factory=tuple)
    policy: str | None = None  # ACCEPT/DROP for built-in chains, None for user chains
    builtin: bool = False
    counters: tuple[int, int] | None = None
    ref: SourceRef | None = None

    @classmethod
    def lazy(
        cls,
        name: str,
        count: int,
        load: Callable[[], tuple[Rule, ...]],
        policy: str | None = None,
        builtin: bool = False,
        counters: tuple[int, int] | None = None,
        ref: SourceRef | None = None,
        lines: Callable[[], list[str]] | None = None,
    ) -> Chain:
        """A chain of `count` rules that `load()` builds on first access to `rules`.  `lines()`, when given, is each
        rule's source line (`ref.text`) in rule order, read without building them (see `rule_lines`)."""
        chain: Chain = _make_lazy(
            cls, "rules", count, load, name=name, policy=policy, builtin=builtin, counters=counters, ref=ref
        )
        if lines is not None:
            object.__setattr__(chain, "_lines", lines)
        return chain

    def rule_count(self) -> int:
        """len(self.rules), without building a lazy chain's rules."""
        n = _lazy_count(self, "rules")
        return len(self.rules) if n is None else n

    def rule_lines(self) -> list[object]:
        """Each rule's source line (the rule itself where it has none), in rule order; a lazy chain whose lines are
        known says them without building its rules (the parser reads a line the same way in the same table and
        chain, so equal lines are equal rules: what-if compares 30,000 chains this way)."""
        lines = self.__dict__.get("_lines")
        if lines is not None and _lazy_count(self, "rules") is not None:
            return list(lines())
        return [r.ref.text if r.ref is not None else r for r in self.rules]

    if not TYPE_CHECKING:  # hidden from mypy: every other attribute stays checked

        def __getattr__(self, name: str) -> Any:
            return _fill_lazy(self, name)

    def __reduce__(self) -> tuple[type[Any], tuple[Any, ...]]:
        return _reduce(self)


@dataclass(frozen=True)
class Table:
    name: str
    chains: tuple[Chain, ...] = field(default_factory=tuple)

    @classmethod
    def lazy(cls, name: str, count: int, rules: int, load: Callable[[], tuple[Chain, ...]]) -> Table:
        """A table of `count` chains holding `rules` rules in all, that `load()` builds on first access to `chains`."""
        table: Table = _make_lazy(cls, "chains", count, load, name=name)
        object.__setattr__(table, "_rules", rules)
        return table

    def chain(self, name: str) -> Chain | None:
        for c in self.chains:
            if c.name == name:
                return c
        return None

    def chain_count(self) -> int:
        """len(self.chains), without building a lazy table's chains."""
        n = _lazy_count(self, "chains")
        return len(self.chains) if n is None else n

    def rule_count(self) -> int:
        """The number of rules of all chains, without building a lazy table's chains or rules."""
        if _lazy_count(self, "chains") is not None:
            rules: int = self.__dict__["_rules"]
            return rules
        return sum(c.rule_count() for c in self.chains)

    if not TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any:
            return _fill_lazy(self, name)

    def __reduce__(self) -> tuple[type[Any], tuple[Any, ...]]:
        return _reduce(self)


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
        return sum(t.rule_count() for t in self.tables)


# --------------------------------------------------------------------------
# Policy routing


def rule_dports(rule: Rule) -> list[int]:
    """The destination ports a rule matches (not negated), from --dport/--dports in any module."""
    out: list[int] = []
    for m in rule.matches:
        for o in m.options:
            if o.name in ("dport", "destination-port", "dports", "destination-ports") and not o.negated:
                for part in ",".join(o.values).split(","):
                    if part.isdigit():
                        out.append(int(part))
    return out
