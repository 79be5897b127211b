"""A working TPROXY story: the capture rule, the policy route to table 133 and the application are on the diagram."""

from meshviz.engine.render.dot import node_count
from meshviz.engine.render.story_dot import story_to_dot

from .helpers import needs_dot, svg_of, svg_text, tproxy_story


def test_dot_has_the_four_clusters_and_numbered_edges() -> None:
    dot = story_to_dot(tproxy_story())
    for cluster in ("cluster_client", "cluster_pod_kernel", "cluster_envoy", "cluster_application"):
        assert f"subgraph {cluster} " in dot
    assert "<b>1</b>" in dot and "<b>20</b>" in dot
    assert node_count(dot) <= 40


def test_reply_edges_are_dashed_and_syn_edges_solid() -> None:
    edges = [line for line in story_to_dot(tproxy_story()).splitlines() if " -> " in line]
    assert any("(reply)" in e and 'style="dashed"' in e for e in edges)
    assert all('style="dashed"' not in e for e in edges if "(reply)" not in e)
    assert all("#c62828" not in e for e in edges), "a working story has no red edge"


@needs_dot
def test_svg_shows_tproxy_rule_table_133_and_the_application() -> None:
    text = svg_text(svg_of(story_to_dot(tproxy_story())))
    assert "mangle/ISTIO_TPROXY #1" in text
    assert "-j TPROXY" in text and "--on-port 15006" in text
    assert "table 133" in text
    assert "application :8083" in text
    assert "verdict: OK" in text
