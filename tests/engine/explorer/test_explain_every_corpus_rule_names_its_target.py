"""Every rule of every corpus file and bundled example gets a non-empty explanation that says what its target does."""

from __future__ import annotations

import pytest

from meshviz.engine.netfilter.explain import explain_rule
from meshviz.engine.netfilter.model import Rule
from meshviz.engine.netfilter.parser import parse_iptables
from meshviz.engine.netfilter.render import rule_text
from meshviz.engine.netfilter.spec import TARGETS

from .helpers import CORPUS_FILES, EXAMPLE_NAMES, corpus, evidence

#: What an explanation of each target must say (lower case); user chains must be named.
TARGET_WORDS = {
    "ACCEPT": "accept",
    "DROP": "drop",
    "RETURN": "return",
    "REJECT": "reject",
    "REDIRECT": "redirect",
    "TPROXY": "transparently hand to port",
    "MARK": "packet mark",
    "CONNMARK": "connection mark",
    "DNAT": "destination",
    "SNAT": "source",
    "MASQUERADE": "source",
    "LOG": "log",
    "NFLOG": "log",
    "CT": "conntrack",
    "NOTRACK": "do not track",
}


def _check(rule: Rule, where: str) -> None:
    text = explain_rule(rule)
    assert text.strip(), f"{where}: empty explanation for {rule_text(rule)}"
    action = text.split(" -> ", 1)[1].lower()
    t = rule.target
    if t is None:
        assert "no target" in action, (where, text)
    elif t.goto:
        assert t.name in action and "go to" in action, (where, text)
    elif t.name in TARGET_WORDS:
        assert TARGET_WORDS[t.name] in action, (where, rule_text(rule), text)
    elif t.name in TARGETS:
        assert t.name.lower() in action, (where, rule_text(rule), text)
    else:
        assert f"jump to chain {t.name}".lower() in action, (where, rule_text(rule), text)


@pytest.mark.parametrize("rel", CORPUS_FILES)
def test_every_corpus_rule_is_explained_with_its_target(rel: str) -> None:
    result = corpus(rel)
    n = 0
    for rs in result.rulesets:
        for table in rs.tables:
            for chain in table.chains:
                for i, rule in enumerate(chain.rules, 1):
                    _check(rule, f"{rel} {table.name}/{chain.name}#{i}")
                    n += 1
    assert n == sum(rs.rule_count() for rs in result.rulesets)


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_every_example_rule_is_explained_with_its_target(name: str) -> None:
    result = parse_iptables(evidence(name).iptables)
    rules = [r for rs in result.rulesets for t in rs.tables for c in t.chains for r in c.rules]
    assert rules
    for rule in rules:
        _check(rule, name)
