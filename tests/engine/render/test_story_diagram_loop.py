"""A loop: Envoy's own upstream SYN lands on its listener again - that edge is red."""

from meshviz.engine.render.dot import RED
from meshviz.engine.render.story_dot import story_to_dot

from .helpers import needs_dot, scenario_story, svg_of


def _red_edges(dot: str) -> list[str]:
    return [line for line in dot.splitlines() if " -> " in line and RED in line]


def test_loop_edge_into_envoys_listener_is_red() -> None:
    dot = story_to_dot(scenario_story("07-tproxy-istio-1.6-unbound-upstream-loop"))
    red = _red_edges(dot)
    assert len(red) == 1
    assert "-> envoy_listener_" in red[0]
    assert "LOOP" in red[0] and 'style="solid,bold"' in red[0]
    assert "verdict: FAILS (LOOP)" in dot


@needs_dot
def test_loop_svg_draws_a_red_edge() -> None:
    svg = svg_of(story_to_dot(scenario_story("07-tproxy-istio-1.6-unbound-upstream-loop")))
    assert 'stroke="#c62828"' in svg
    assert "LOOP: Envoy accepts its own upstream connection" in svg
