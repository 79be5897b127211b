"""The netfilter model: a family's tables, chains and rules, with their matches and targets.

The classes a ruleset holds one of per rule (`Rule`, `Match`, `MatchOption`, `Target`, the criteria; `SourceRef` in
core) use `__slots__`: a kube-proxy ruleset has ~10^5 of each (issue 15: 15% less memory per rule).
"""

from __future__ import annotations

from dataclasses import dataclass

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
