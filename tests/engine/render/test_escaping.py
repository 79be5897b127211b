"""Hostile rule comments, chain and listener names: the DOT parses and the SVG is inert."""

from dataclasses import replace

from meshviz.engine.core.trace import Hop
from meshviz.engine.render.story_dot import story_to_dot
from meshviz.engine.story.model import Story, StoryHop

from ..fix.helpers import TPROXY_RULES
from .helpers import needs_dot, svg_of, svg_text, tproxy_story

EVIL = '<script>alert(1)</script> " \\ { } | < > ]; digraph x {'


def _flat(dot: str) -> str:
    return dot.replace('<br align="left"/>', " ")


def _with_comment_rule() -> Story:
    rule = "-A ISTIO_TPROXY ! -d 127.0.0.1/32 -p tcp -j TPROXY --tproxy-mark 1337/0xffffffff --on-port 15006"
    assert rule in TPROXY_RULES
    quoted = EVIL.replace("\\", "\\\\").replace('"', '\\"')
    commented = rule.replace("-j TPROXY", f'-m comment --comment "{quoted}" -j TPROXY')
    return tproxy_story(iptables=TPROXY_RULES.replace(rule, commented))


def _with_hostile_names(story: Story) -> Story:
    """Newlines, quotes and backslashes in chain, hook and Envoy names (the parser would never produce these)."""
    evil = EVIL + "\nsecond line \\N \\G"
    hops: list[StoryHop] = []
    for h in story.hops:
        if h.trace is not None:
            t = h.trace
            khops = tuple(
                Hop(k.node, k.name, tuple(replace(s, chain=(s.chain + evil) if s.chain else None) for s in k.steps))
                for k in t.hops
            )
            h = replace(h, trace=replace(t, hops=khops, socket=(t.socket or "") + evil))
        else:
            h = replace(h, detail=h.detail + evil, steps=tuple(s + evil for s in h.steps))
        hops.append(h)
    return replace(story, hops=tuple(hops), summary=story.summary + evil)


def test_the_comment_reaches_the_dot_escaped() -> None:
    dot = story_to_dot(_with_comment_rule())
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dot
    assert "<script" not in dot
    assert "]; digraph x {" in _flat(dot)  # inside an HTML-like label: plain text
    assert dot.count("digraph ") == 2 and dot.startswith("digraph meshviz {")


def test_newlines_in_user_data_do_not_break_lines_of_dot() -> None:
    dot = story_to_dot(_with_hostile_names(tproxy_story()))
    assert "second line" in dot
    for line in dot.splitlines():
        assert not line.startswith("second line")
    assert "<script" not in dot


@needs_dot
def test_svg_of_a_hostile_comment_is_inert() -> None:
    svg = svg_of(story_to_dot(_with_comment_rule()))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in svg
    assert "<script>alert(1)</script>" in svg_text(svg)  # shown as text, not markup


@needs_dot
def test_svg_of_hostile_names_is_inert() -> None:
    svg = svg_of(story_to_dot(_with_hostile_names(tproxy_story())))
    text = " ".join(svg_text(svg).split("\n"))  # labels are wrapped at spaces
    assert "<script>alert(1)</script>" in text
    assert '" \\ { } | < > ]; digraph x {' in text
    assert "second line \\N \\G" in text  # no Graphviz escape expansion
