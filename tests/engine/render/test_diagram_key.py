"""diagram_key: a stable sha256 over format and DOT text."""

import re

from meshviz.engine.render.dot import diagram_key
from meshviz.engine.render.story_dot import story_to_dot

from .helpers import tproxy_story


def test_key_is_sha256_hex_and_depends_on_format_and_text() -> None:
    dot = story_to_dot(tproxy_story())
    k = diagram_key(dot, "svg")
    assert re.fullmatch(r"[0-9a-f]{64}", k)
    assert k == diagram_key(story_to_dot(tproxy_story()), "svg"), "same story, same DOT, same key"
    assert k != diagram_key(dot, "png")
    assert k != diagram_key(dot + " ", "svg")
