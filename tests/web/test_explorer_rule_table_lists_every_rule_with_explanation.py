"""The rule table lists every iptables rule of the pod with its table, chain, index, text and explanation."""

from __future__ import annotations

import re

import pytest

from meshviz.engine.core.model import Family
from meshviz.engine.netfilter.explain import explain_rule
from meshviz.engine.netfilter.parser import parse_iptables
from tests.web.explorer_support import analysed_example, client_for, explorer_user

pytestmark = pytest.mark.django_db


def test_every_rule_is_listed_with_its_explanation() -> None:
    user = explorer_user()
    analysis = analysed_example(user)
    ruleset = parse_iptables(analysis.iptables).ruleset(Family.IPV4)
    assert ruleset is not None
    expected = [
        (t.name, c.name, i, explain_rule(r)) for t in ruleset.tables for c in t.chains for i, r in enumerate(c.rules, 1)
    ]
    assert len(expected) > 20

    client = client_for(user)
    data = client.get(f"/a/{analysis.slug}/rules/", {"format": "json"}).json()
    assert data["total"] == len(expected)
    got = [(r["table"], r["chain"], r["index"], r["explanation"]) for r in data["rules"]]
    assert got == expected
    assert all(r["explanation"] and r["text"].startswith(f"-A {r['chain']}") for r in data["rules"])
    # the TPROXY rule's explanation says what it does, in words
    tproxy = next(r for r in data["rules"] if r["target"] == "TPROXY")
    assert "15006" in tproxy["explanation"] and tproxy["url"].startswith(f"/a/{analysis.slug}/rules/mangle/")

    page = client.get(f"/a/{analysis.slug}/rules/").content.decode()
    rows = re.findall(r'<tr class="rule-row[^"]*"', page)
    assert len(rows) == len(expected)
    assert f"{len(expected)} of {len(expected)} rules" in page
    # rules hit by the analysed connections carry their connection numbers
    assert re.search(r'<tr class="rule-row hit"', page)
    assert '<span class="hit-by">#1</span>' in page
