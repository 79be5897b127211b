"""Helpers for the Istio generator tests: rulesets as comparable data."""

from __future__ import annotations

from collections.abc import Iterable

from meshviz.engine.netfilter.model import Ruleset
from meshviz.engine.netfilter.parser import parse_iptables
from meshviz.engine.netfilter.render import render_rule

ChainKey = tuple[str, str, str]


def chain_rules(rulesets: Iterable[Ruleset]) -> dict[ChainKey, list[str]]:
    """(family, table, chain) -> the chain's rules in order, each in canonical iptables-save form."""
    return {
        (rs.family.value, table.name, chain.name): [render_rule(rule) for rule in chain.rules]
        for rs in rulesets
        for table in rs.tables
        for chain in table.chains
    }


def golden_rules(text: str, source: str) -> dict[ChainKey, list[str]]:
    """A golden as the engine's parser reads it (every `-I CHAIN N` applied)."""
    result = parse_iptables(text, source)
    assert not result.errors, [str(e) for e in result.errors]
    return chain_rules(result.rulesets)


def differences(expected: dict[ChainKey, list[str]], actual: dict[ChainKey, list[str]]) -> list[str]:
    out = []
    for key in sorted(set(expected) | set(actual)):
        if expected.get(key) != actual.get(key):
            out.append(f"{'/'.join(key)}:\n  golden: {expected.get(key)}\n  generated: {actual.get(key)}")
    return out
