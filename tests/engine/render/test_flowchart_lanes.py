"""Flow diagrams in lanes (meshviz.engine.render.flowchart): one row per step, the request path then the reply path, the
deciding rule on the step's row, passing hooks folded away, the failure red, text of 11 points or more, and the
REDIRECT vs TPROXY pair side by side with the differing steps highlighted."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from meshviz.analyses import examples
from meshviz.engine.fix.compare import compare
from meshviz.engine.pipeline.evidence import story_for
from meshviz.engine.render import flowchart
from meshviz.engine.story.model import Story

from .helpers import needs_dot, svg_of

CLIENT = "10.255.0.1:40000"
NAMES = [e.name for e in examples.examples()]


def _story(name: str) -> Story:
    ex = examples.get(name)
    assert ex is not None
    return story_for(ex.engine_evidence(), client=CLIENT, port=ex.app_ports[0])


def _flat(text: str) -> str:
    return re.sub(r"<[^>]+>", " ", text)


@pytest.mark.parametrize("name", NAMES)
def test_rows_are_numbered_in_order_request_first_then_replies(name: str) -> None:
    flow = flowchart.flow_of(_story(name))
    steps = [r for r in flow.rows if r.kind == "step"]
    assert [r.number for r in steps] == list(range(1, len(steps) + 1))
    replies = [r.reply for r in steps]
    assert replies == sorted(replies), "a request step after a reply step"
    heading = [i for i, r in enumerate(flow.rows) if r.kind == "heading"]
    first_reply = next(i for i, r in enumerate(flow.rows) if r.reply)
    assert heading and heading[0] < first_reply
    assert {r.lane for r in steps} <= set(flowchart.LANES)


@pytest.mark.parametrize("name", NAMES)
def test_no_text_smaller_than_11_points(name: str) -> None:
    dot = flowchart.story_to_flow_dot(_story(name))
    sizes = [float(x) for x in re.findall(r'(?:point-size|fontsize)="([0-9.]+)"', dot)]
    assert sizes and min(sizes) >= flowchart.SMALL >= 11


def test_passing_hooks_are_folded_into_the_step_not_rows() -> None:
    flow = flowchart.flow_of(_story("redirect-app-sees-127.0.0.6"))
    boxes = [_flat(r.label).split()[0] for r in flow.rows if r.kind == "step"]
    assert "INPUT" not in boxes  # INPUT decides nothing for this pod
    assert any("INPUT" in r.tooltip and "no rule decides" in r.tooltip for r in flow.rows)
    # the deciding rule is on the row of the step it decided
    redirect = next(r for r in flow.rows if "ISTIO_IN_REDIRECT" in r.note)
    assert "REDIRECT --to-ports 15006" in _flat(redirect.note)
    assert "PREROUTING" in _flat(redirect.label) or "routing decision" in _flat(redirect.label)


def test_the_failing_step_is_red_and_marked() -> None:
    flow = flowchart.flow_of(_story("tproxy-missing-policy-route-503-uf"))
    failed = [r for r in flow.rows if r.failed]
    assert failed and all(r.reply for r in failed)  # the reply escapes
    dot = flowchart.story_to_flow_dot(_story("tproxy-missing-policy-route-503-uf"))
    assert dot.count('class="step failure"') == 1


@needs_dot
def test_svg_has_the_lanes_and_is_about_a_page_wide() -> None:
    svg = svg_of(flowchart.story_to_flow_dot(_story("redirect-app-sees-127.0.0.6")))
    root = ET.fromstring(svg)
    width = float(root.attrib["width"].removesuffix("pt"))
    assert 900 <= width <= 1250
    for title in ("client / network", "pod kernel", "Envoy sidecar", "application", "decided by"):
        assert title in svg
    assert "reply path" in svg


@needs_dot
def test_redirect_and_tproxy_side_by_side_highlight_what_differs() -> None:
    ex = examples.get("redirect-app-sees-127.0.0.6")
    assert ex is not None
    comparison = compare(ex.engine_evidence(), [(CLIENT, ex.app_ports[0])])
    dot = flowchart.compare_to_flow_dot(comparison, 0)
    svg = svg_of(dot)
    assert "REDIRECT" in svg and "TPROXY" in svg and "(as uploaded)" in svg and "(derived)" in svg
    assert 'class="step differs"' in dot
    # the capture differs (nat REDIRECT vs mangle TPROXY); the socket lookups do not
    a, b = (
        flowchart.flow_of(Story.from_dict(comparison["connections"][0]["stories"][m])) for m in ("REDIRECT", "TPROXY")
    )
    flowchart._mark_differences(a, b)
    assert any(r.differs and "nat" in _flat(r.label) for r in a.rows)
    assert not any(r.differs and _flat(r.label).strip() == "socket lookup" for r in a.rows)
    with pytest.raises(ValueError):
        flowchart.compare_to_flow_dot(comparison, 5)
