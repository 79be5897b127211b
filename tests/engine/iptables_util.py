"""Small helpers shared by the iptables parser/render tests."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from meshviz.engine.core.model import Family
from meshviz.engine.netfilter.model import Chain, Rule, Ruleset
from meshviz.engine.netfilter.parser import IptablesParseResult, parse_iptables

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "corpus"


def parse_ok(text: str, **kw: object) -> IptablesParseResult:
    """Parse and insist on zero errors (showing them if there are any)."""
    r = parse_iptables(text, **kw)  # type: ignore[arg-type]
    assert not r.errors, "\n".join(str(e) for e in r.errors)
    return r


def ruleset(result: IptablesParseResult, family: Family = Family.IPV4) -> Ruleset:
    rs = result.ruleset(family)
    assert rs is not None, f"no {family.value} ruleset; have {[r.family.value for r in result.rulesets]}"
    return rs


def chain(rs: Ruleset, table: str, name: str) -> Chain:
    t = rs.table(table)
    assert t is not None, f"no table {table}"
    c = t.chain(name)
    assert c is not None, f"no chain {table}/{name}"
    return c


def rules(result: IptablesParseResult, table: str, name: str, family: Family = Family.IPV4) -> tuple[Rule, ...]:
    return chain(ruleset(result, family), table, name).rules


def only_rule(result: IptablesParseResult, table: str = "filter", name: str = "INPUT") -> Rule:
    rs = rules(result, table, name)
    assert len(rs) == 1, rs
    return rs[0]


def without_refs(rs: Ruleset) -> Ruleset:
    """The ruleset with every SourceRef removed and unknown chain counters read as [0:0]."""
    return dataclasses.replace(
        rs,
        source="",
        tables=tuple(
            dataclasses.replace(
                t,
                chains=tuple(
                    dataclasses.replace(
                        c,
                        ref=None,
                        counters=c.counters if c.counters is not None else (0, 0),
                        rules=tuple(dataclasses.replace(r, ref=None) for r in c.rules),
                    )
                    for c in t.chains
                ),
            )
            for t in rs.tables
        ),
    )
