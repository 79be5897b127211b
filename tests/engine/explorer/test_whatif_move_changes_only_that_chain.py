"""Moving a rule changes that chain's order only: every other chain, and every other line of the text, stay."""

from __future__ import annotations

import difflib

import pytest

from meshviz.engine.explorer.edits import Edit
from meshviz.engine.explorer.whatif import apply_edits
from meshviz.engine.netfilter.parser import parse_iptables
from meshviz.engine.netfilter.render import render_rule

from .helpers import EXAMPLE_NAMES, evidence


def _chains(text: str) -> dict[tuple[str, str, str], list[str]]:
    r = parse_iptables(text)
    assert not r.errors
    return {
        (str(rs.family), t.name, c.name): [render_rule(x) for x in c.rules]
        for rs in r.rulesets
        for t in rs.tables
        for c in t.chains
    }


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_move_first_to_last_and_back(name: str) -> None:
    ev = evidence(name)
    before = _chains(ev.iptables)
    moved = 0
    for (fam, table, chain), rules in before.items():
        if len(rules) < 2 or fam != "ipv4":
            continue
        for index, to in ((1, len(rules)), (len(rules), 1), (2, 1)):
            result = apply_edits(ev, [Edit(op="move", table=table, chain=chain, index=index, to_index=to)])
            assert result.ok, result.errors
            after = _chains(result.evidence.iptables)
            expected = list(rules)
            expected.insert(to - 1, expected.pop(index - 1))
            assert after[(fam, table, chain)] == expected
            assert {k: v for k, v in after.items() if k != (fam, table, chain)} == {
                k: v for k, v in before.items() if k != (fam, table, chain)
            }
            # only lines of this chain are removed or added
            sm = difflib.SequenceMatcher(None, ev.iptables.split("\n"), result.evidence.iptables.split("\n"))
            for op, i1, i2, j1, j2 in sm.get_opcodes():
                if op == "equal":
                    continue
                for line in ev.iptables.split("\n")[i1:i2] + result.evidence.iptables.split("\n")[j1:j2]:
                    assert f" {chain} " in line, line
            moved += 1
    assert moved
