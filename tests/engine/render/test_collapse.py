"""Hooks where no rule decides are folded into the next edge ("via INPUT") instead of getting a node."""

from meshviz.engine.render.dot import node_count
from meshviz.engine.render.story_dot import story_to_dot

from .helpers import scenario_story, tproxy_story


def test_non_deciding_hooks_become_via_notes() -> None:
    dot = story_to_dot(tproxy_story())
    assert "via INPUT" in dot and "via POSTROUTING" in dot
    assert "<b>INPUT</b>" not in dot and "<b>POSTROUTING</b>" not in dot


def test_typical_stories_stay_small() -> None:
    for name in (
        "01-redirect-istio-1.18-app-sees-127.0.0.6",
        "05-tproxy-original-src-no-policy-route",
        "07-tproxy-istio-1.6-unbound-upstream-loop",
        "10-outbound-app-to-external-via-passthrough",
    ):
        assert node_count(story_to_dot(scenario_story(name))) <= 40, name
