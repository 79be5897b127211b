"""Nesting user-chain calls deeper than the simulator's stack ends in a named `jump_depth` limit, not a DROP."""

from __future__ import annotations

from meshviz.engine.core.limits import MAX_JUMP_DEPTH
from meshviz.engine.core.trace import Disposition, StepKind
from tests.engine.helpers import POD, pod, receive, tcp
from tests.engine.limits.fanout import chain_of_jumps


def test_calls_nested_deeper_than_the_limit_are_a_named_limit() -> None:
    t = receive(pod(chain_of_jumps(MAX_JUMP_DEPTH + 5)), tcp("10.0.0.1", 40000, POD, 80))
    assert t.disposition == Disposition.UNSUPPORTED
    last = t.steps()[-1]
    assert last.kind == StepKind.LIMIT
    assert "jump_depth" in last.detail and f"jumping to F{MAX_JUMP_DEPTH} " in last.detail


def test_calls_nested_within_the_limit_are_walked() -> None:
    t = receive(pod(chain_of_jumps(MAX_JUMP_DEPTH - 1)), tcp("10.0.0.1", 40000, POD, 80))
    assert t.disposition == Disposition.DELIVERED_LOCAL
