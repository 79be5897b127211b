"""Chains that each jump twice to the next (depth 18-20 took 15-60 s and 1-5 GB) are linear: a chain call that
changed nothing is memoised, and the trace says so."""

from __future__ import annotations

import resource
import time

import pytest

from meshviz.engine.core.trace import Disposition, StepAction, StepKind
from tests.engine.helpers import POD, pod, receive, tcp
from tests.engine.limits.fanout import twice_jumping_chains


@pytest.mark.parametrize("depth", [18, 20, 60])
def test_twice_jumping_chains_trace_in_linear_time(depth: int) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    t = receive(pod(twice_jumping_chains(depth)), tcp("10.0.0.1", 40000, POD, 80))
    assert time.monotonic() - started < 2.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024  # KiB: under 100 MB more
    # The kernel would accept the packet (nothing in the chains decides); so does the simulation.
    assert t.disposition == Disposition.DELIVERED_LOCAL
    memoised = [s for s in t.steps() if s.action == StepAction.JUMP and "not walked again" in s.detail]
    assert len(memoised) == depth  # the second jump of every chain
    assert len(t.steps()) < 10 * depth + 50


def test_a_memoised_call_is_not_reused_after_the_packet_changed() -> None:
    # F0 calls F1, then sets the mark, then calls F1 again: F1 now matches the mark and drops.
    rules = """*mangle
:PREROUTING ACCEPT [0:0]
:F0 - [0:0]
:F1 - [0:0]
-A PREROUTING -j F0
-A F0 -j F1
-A F0 -j MARK --set-mark 0x7
-A F0 -j F1
-A F1 -m mark --mark 0x7 -j DROP
COMMIT
"""
    t = receive(pod(rules), tcp("10.0.0.1", 40000, POD, 80))
    assert t.disposition == Disposition.DROPPED
    assert not any(s.kind == StepKind.LIMIT for s in t.steps())
