"""A REDIRECT story: the nat REDIRECT rule and Envoy's 127.0.0.6 upstream bind."""

from meshviz.engine.render.story_dot import story_to_dot

from .helpers import needs_dot, scenario_story, svg_of, svg_text


def test_redirect_story_shows_the_127_0_0_6_bind() -> None:
    dot = story_to_dot(scenario_story("01-redirect-istio-1.18-app-sees-127.0.0.6"))
    assert "upstream bind" in dot and "127.0.0.6" in dot
    assert "nat/ISTIO_IN_REDIRECT #1" in dot


@needs_dot
def test_redirect_svg_names_the_rule_and_the_bind() -> None:
    text = svg_text(svg_of(story_to_dot(scenario_story("01-redirect-istio-1.18-app-sees-127.0.0.6"))))
    assert "-j REDIRECT --to-ports 15006" in text
    assert "127.0.0.6" in text
    assert "application" in text
