"""render_svg/render_png: bounded output, bounded time, clear errors."""

import pytest

from meshviz.engine.render import dot as r
from meshviz.engine.render.dot import DiagramError, render_png, render_svg
from meshviz.engine.render.story_dot import story_to_dot

from .helpers import needs_dot, tproxy_story


@needs_dot
def test_png_renders() -> None:
    assert render_png(story_to_dot(tproxy_story())).startswith(b"\x89PNG\r\n\x1a\n")


@needs_dot
def test_output_over_max_bytes_is_refused() -> None:
    with pytest.raises(DiagramError, match="larger than the limit of 100 bytes"):
        render_svg(story_to_dot(tproxy_story()), max_bytes=100)


@needs_dot
def test_timeout_is_enforced() -> None:
    # a graph that takes dot far longer than a millisecond
    dot = "digraph g {" + " ".join(f"a{i} -> a{(i * 7919) % 997};" for i in range(3000)) + "}"
    with pytest.raises(DiagramError, match="took longer than"):
        render_svg(dot, timeout=0.001)


@needs_dot
def test_invalid_dot_is_a_clear_error() -> None:
    with pytest.raises(DiagramError, match="Graphviz failed to render"):
        render_svg("digraph { a -> ")


def test_missing_binary_and_bad_format() -> None:
    with pytest.raises(DiagramError, match="not installed"):
        r.render("digraph {}", "svg", binary="/nonexistent/dot")
    with pytest.raises(DiagramError, match="unsupported diagram format"):
        r.render("digraph {}", "pdf")


def test_oversized_dot_is_refused_before_running_dot() -> None:
    with pytest.raises(DiagramError, match="too large"):
        r.render("x" * (r.MAX_DOT_BYTES + 1), "svg", binary="/nonexistent/dot")
