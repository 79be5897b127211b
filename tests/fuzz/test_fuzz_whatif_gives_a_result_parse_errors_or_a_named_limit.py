"""The what-if entry point on fuzzed edits (the explorer's `?edits=` and `POST .../whatif/`): edits parse into Edits
or ParseErrors, applying them gives evidence or ParseErrors, re-tracing gives stories or a ParseError carrier —
nothing else, within the time and memory bound."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from meshviz.engine.core.errors import EngineInputError, ParseError
from meshviz.engine.explorer import whatif
from meshviz.engine.pipeline.evidence import Evidence
from tests.fuzz import strategies as s
from tests.fuzz.harness import bounded, examples

EXAMPLE = s.EXAMPLES / "tproxy-missing-policy-route-503-uf"
EVIDENCE = Evidence(
    iptables=(EXAMPLE / "iptables").read_text(),
    pod_ip="172.16.188.31",
    ip_rule=(EXAMPLE / "ip-rule").read_text(),
    ip_route=(EXAMPLE / "ip-route").read_text(),
    sysctl=(EXAMPLE / "sysctl").read_text(),
    envoy=(EXAMPLE / "envoy.json").read_text(),
)


def _whatif(items: Any, conns: list[dict[str, Any]]) -> None:
    edits, errors = whatif.parse_edits(items)
    assert all(isinstance(e, ParseError) for e in errors)
    result = whatif.apply_edits(EVIDENCE, edits)
    assert all(isinstance(e, ParseError) for e in result.errors)
    if result.ok:
        try:
            whatif.retrace(result.evidence, conns)
        except EngineInputError as exc:
            assert all(isinstance(e, ParseError) for e in exc.errors)


@given(items=st.one_of(s.edit_lists, s.json_values), conns=st.lists(s.connections, min_size=1, max_size=2))
@example(
    items=[{"op": "set_text", "kind": "iptables", "text": s.fan_out(20, True)}],
    conns=[{"direction": "inbound", "client": "10.1.1.1:40000", "port": 8083}],
)
@example(
    items=[{"op": "set_text", "kind": "envoy", "text": "[" * 3000 + "]" * 3000}],
    conns=[{"direction": "inbound", "client": "10.1.1.1:40000", "port": 8083}],
)
@settings(max_examples=examples("whatif", 10))
def test_whatif(items: Any, conns: list[dict[str, Any]]) -> None:
    bounded("whatif", items, lambda: _whatif(items, conns))
