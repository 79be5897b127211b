"""Statistic matches that fork into more paths than the budget end the last shown path with a named limit."""

from __future__ import annotations

from meshviz.engine.core.limits import MAX_PATHS
from meshviz.engine.core.trace import StepKind
from meshviz.engine.pipeline.pod import trace
from tests.engine.helpers import POD, pod, tcp


def test_more_statistic_paths_than_the_budget_are_cut_with_a_named_step() -> None:
    n = 10  # 2^10 = 1024 paths
    lines = ["*mangle", ":PREROUTING ACCEPT [0:0]"]
    lines += [
        f"-A PREROUTING -m statistic --mode random --probability 0.5 -j MARK --or-mark {1 << i:#x}" for i in range(n)
    ]
    lines.append("COMMIT")
    traces = trace(pod("\n".join(lines) + "\n"), tcp("10.0.0.1", 40000, POD, 80), in_iface="eth0")
    assert len(traces) == MAX_PATHS
    last = traces[-1].steps()[-1]
    assert last.kind == StepKind.LIMIT and "paths" in last.detail and str(MAX_PATHS) in last.detail
    assert not any(s.kind == StepKind.LIMIT for t in traces[:-1] for s in t.steps())
