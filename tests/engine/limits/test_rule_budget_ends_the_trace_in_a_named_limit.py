"""What memoisation cannot collapse (every call changes the mark) runs into the rule budget: the trace ends in a
named, explained LIMIT step with the UNSUPPORTED disposition, within a second and without the memory blow-up."""

from __future__ import annotations

import time

from meshviz.engine.core.limits import MAX_RULE_EVALUATIONS_PER_WALK
from meshviz.engine.core.trace import Disposition, StepKind
from tests.engine.helpers import POD, pod, receive, tcp
from tests.engine.limits.fanout import twice_jumping_chains


def test_fan_out_that_changes_the_packet_stops_at_the_rule_budget() -> None:
    started = time.monotonic()
    t = receive(pod(twice_jumping_chains(40, change_mark=True)), tcp("10.0.0.1", 40000, POD, 80))
    assert time.monotonic() - started < 5.0
    assert t.disposition == Disposition.UNSUPPORTED
    last = t.steps()[-1]
    assert last.kind == StepKind.LIMIT
    assert "rule_evaluations_per_walk" in last.detail
    assert f"{MAX_RULE_EVALUATIONS_PER_WALK:,}" in last.detail
    assert "fan out" in last.detail
    assert last.table == "mangle" and last.hook == "PREROUTING"
    assert "rule_evaluations_per_walk" in t.detail
