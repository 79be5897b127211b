"""hits_from_stories on the stored story JSON agrees with the Story objects' own traces."""

from __future__ import annotations

import json

import pytest

from meshviz.engine.explorer.rule_table import hits_from_stories, steps_for_rule
from meshviz.engine.explorer.whatif import retrace, stored

from .helpers import EXAMPLE_NAMES, TPROXY_OK, connections, evidence


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_hits_equal_the_rule_steps_of_each_trace(name: str) -> None:
    ev = evidence(name)
    conns = connections(ev)
    stories = retrace(ev, conns)
    expected: dict[tuple[str, str, int], set[int]] = {}
    for number, story in enumerate(stories, 1):
        for hop in story.hops:
            for step in hop.trace.rules_hit() if hop.trace else []:
                assert step.table and step.chain and step.index
                expected.setdefault((step.table, step.chain, step.index), set()).add(number)
    as_stored = json.loads(json.dumps(stored(stories, conns)))  # exactly what the database returns
    hits = hits_from_stories(as_stored)
    assert {k: set(v) for k, v in hits.items()} == expected
    assert all(v == sorted(v) for v in hits.values())


def test_tproxy_rule_is_hit_by_the_inbound_connection_only() -> None:
    ev = evidence(TPROXY_OK)
    conns = connections(ev)
    hits = hits_from_stories(stored(retrace(ev, conns), conns))
    inbound = [n for n, c in enumerate(conns, 1) if c["direction"] == "inbound"]
    assert hits[("mangle", "ISTIO_TPROXY", 1)] == inbound


def test_steps_for_rule_gives_the_rule_with_its_neighbours() -> None:
    ev = evidence(TPROXY_OK)
    conns = connections(ev)
    stories = stored(retrace(ev, conns), conns)
    items = steps_for_rule(stories, "mangle", "ISTIO_TPROXY", 1)
    assert items
    first = items[0]
    assert first["number"] == 1 and first["connection"] == conns[0]
    assert first["hop"] == "client SYN"
    assert first["kernel_hop"] == "PREROUTING"
    at = first["at"]
    step = first["steps"][at]
    assert (step["kind"], step["table"], step["chain"], step["index"]) == ("RuleMatch", "mangle", "ISTIO_TPROXY", 1)
    assert 1 <= len(first["steps"]) <= 5 and at <= 2 and len(first["steps"]) - at - 1 <= 2
    assert at == 2, "the TPROXY rule is not the first step of PREROUTING, so two steps precede it"
    assert steps_for_rule(stories, "mangle", "ISTIO_TPROXY", 2) == []
