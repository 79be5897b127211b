"""Flow diagrams of an analysis's connections: Graphviz through meshviz.engine.render.dot, cached by content.

Stored results hold each story as `Story.to_dict()`; `Story.from_dict` (in the engine) rebuilds the Story the renderer
draws. Rendered bytes are cached in Django's default cache under `diagram_key(dot, fmt)`, so the same
story (in any analysis) is rendered once.
"""

from __future__ import annotations

import contextlib
import logging
import re
from typing import Any

from django.core.cache import cache
from django.http import HttpResponse, JsonResponse

from meshviz.engine.api import Story, flowchart, render
from meshviz.web import ratelimit

from . import services
from .models import Analysis

logger = logging.getLogger(__name__)

FORMATS = {"svg": "image/svg+xml", "png": "image/png"}
CACHE_PREFIX = "meshviz:diagram:"
#: a day: entries are content-addressed, so they never go stale; the timeout only bounds the memory
CACHE_SECONDS = 24 * 3600


class NoSuchConnection(LookupError):
    """The analysis has no results, or no connection with that number."""


def story_dot(analysis: Analysis, number: int) -> str:
    """DOT text of connection `number` (1-based, as shown on the analysis page)."""
    stories = (analysis.results or {}).get("stories") or []
    if not 1 <= number <= len(stories):
        raise NoSuchConnection(f"the analysis has no connection {number} (it has {len(stories)})")
    return flowchart.story_to_flow_dot(Story.from_dict(stories[number - 1]))


def compare_dot(analysis: Analysis, number: int) -> str:
    """DOT text of the REDIRECT vs TPROXY flow diagrams of compared connection `number` (1-based)."""
    conns = ((analysis.results or {}).get("comparison") or {}).get("connections") or []
    if not 1 <= number <= len(conns):
        raise NoSuchConnection(f"the comparison has no connection {number} (it has {len(conns)})")
    try:
        return flowchart.compare_to_flow_dot(analysis.results["comparison"], number - 1)  # type: ignore[index]
    except ValueError as exc:
        raise NoSuchConnection(str(exc)) from exc


def rendered(dot_text: str, fmt: str) -> tuple[bytes, bool]:
    """The diagram in `fmt` (svg or png) and whether it came from the cache; raises render.DiagramError."""
    if fmt not in FORMATS:
        raise render.DiagramError(f"unsupported diagram format {fmt!r} (svg or png)")
    key = CACHE_PREFIX + render.diagram_key(dot_text, fmt)
    data = cache_get(key)
    if isinstance(data, bytes):
        return data, True
    data = render.render_svg(dot_text) if fmt == "svg" else render.render_png(dot_text)
    cache_set(key, data)
    return data, False


def cache_get(key: str) -> Any:
    """The cached value, or None (also when the cache server is down: diagrams are then rendered every time)."""
    try:
        return cache.get(key)
    except ratelimit.cache_errors():
        return None


def cache_set(key: str, value: Any) -> None:
    with contextlib.suppress(*ratelimit.cache_errors()):
        cache.set(key, value, CACHE_SECONDS)


_PROLOG = re.compile(rb"\A(?:\s*<\?xml[^>]*\?>|\s*<!DOCTYPE[^>]*>|\s*<!--.*?-->)*\s*", re.S)


def inline_svg(svg: bytes) -> str:
    """Graphviz's SVG document as an element to put inside HTML (no XML prolog, doctype or comments)."""
    return _PROLOG.sub(b"", svg).decode("utf-8")


def http_response(analysis: Analysis, number: int, fmt: str, *, compare: bool = False) -> HttpResponse:
    """Connection `number`'s diagram (with `compare`, its REDIRECT vs TPROXY diagram) as svg/png (503 with a JSON
    error if Graphviz fails).

    Raises NoSuchConnection for a connection the analysis does not have (the caller's 404).
    """
    dot = compare_dot(analysis, number) if compare else story_dot(analysis, number)
    try:
        data, hit = rendered(dot, fmt)
    except render.DiagramError as exc:
        logger.warning("analysis %s: diagram %d (%s): %s", analysis.slug, number, fmt, exc)
        return JsonResponse(
            {"errors": [services.error("diagram", f"the diagram cannot be rendered: {exc}")]}, status=503
        )
    response = HttpResponse(data, content_type=FORMATS[fmt])
    response["X-Meshviz-Cache"] = "hit" if hit else "miss"
    name = f"meshviz-{analysis.slug}-{'compare-' if compare else ''}{number}.{fmt}"
    response["Content-Disposition"] = f'inline; filename="{name}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


def card_png(analysis: Analysis) -> bytes | None:
    """The 1200 x 630 preview image of the analysis for chat unfurls (None: nothing to draw yet).

    Raises render.DiagramError when Graphviz fails."""
    from . import chat

    c = chat.card(analysis)
    stories = (analysis.results or {}).get("stories") or []
    if c["number"] is None or not stories:
        return None
    dot = flowchart.card_to_dot(Story.from_dict(stories[c["number"] - 1]), c["title"], c["description"])
    return rendered(dot, "png")[0]
