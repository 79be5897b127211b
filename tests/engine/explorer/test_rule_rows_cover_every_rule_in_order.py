"""rule_rows: one row per rule in table, chain, index order, with the save text, explanation, source line and hits."""

from __future__ import annotations

import pytest

from meshviz.engine.explorer.rule_table import hits_from_stories, rule_rows
from meshviz.engine.netfilter.explain import explain_rule
from meshviz.engine.netfilter.render import render_rule

from .helpers import EXAMPLE_NAMES, STRICT_CORPUS, corpus, evidence, snapshot, stored_stories


@pytest.mark.parametrize("rel", [f for f in STRICT_CORPUS if "istio" in f])
def test_rows_follow_the_ruleset(rel: str) -> None:
    for rs in corpus(rel).rulesets:
        rows = rule_rows(rs)
        expected = [(t.name, c.name, i, r) for t in rs.tables for c in t.chains for i, r in enumerate(c.rules, 1)]
        assert [(r.table, r.chain, r.index) for r in rows] == [(t, c, i) for t, c, i, _ in expected]
        for row, (_, _, _, rule) in zip(rows, expected, strict=True):
            assert row.family == str(rs.family)
            assert row.text == render_rule(rule) and row.text.startswith(f"-A {row.chain} ")
            assert row.explanation == explain_rule(rule)
            assert rule.ref is not None and row.line == rule.ref.line and row.original == rule.ref.text
            assert row.target == (rule.target.name if rule.target else "")
            assert row.hits == ()


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_rows_carry_the_connections_that_hit_them(name: str) -> None:
    ev = evidence(name)
    stories = stored_stories(ev)
    hits = hits_from_stories(stories)
    rs = snapshot(ev).rulesets[0]
    rows = rule_rows(rs, hits)
    hit_rows = {(r.table, r.chain, r.index): r.hits for r in rows if r.hits}
    assert hit_rows, "the default connections hit at least one rule"
    assert hit_rows == {k: tuple(v) for k, v in hits.items()}
    assert all(set(h) <= set(range(1, len(stories) + 1)) for h in hit_rows.values())
    assert rows[0].to_dict()["hits"] == list(rows[0].hits)
