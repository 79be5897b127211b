"""GET /a/<slug>/diagram/<n>.svg|png and /api/v1/analyses/<slug>/diagram.svg|png?connection=N."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client

from meshviz.engine.render import dot as render

from .helpers import from_example

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def slug(client: Client, django_capture_on_commit_callbacks: Any) -> str:
    analysis = from_example(client, django_capture_on_commit_callbacks)
    cache.clear()  # rendering the permalink page is not part of these tests
    return analysis.slug


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count real Graphviz runs."""
    calls: list[str] = []
    real_svg, real_png = render.render_svg, render.render_png

    def svg(dot: str, *a: Any, **kw: Any) -> bytes:
        calls.append("svg")
        return real_svg(dot, *a, **kw)

    def png(dot: str, *a: Any, **kw: Any) -> bytes:
        calls.append("png")
        return real_png(dot, *a, **kw)

    monkeypatch.setattr(render, "render_svg", svg)
    monkeypatch.setattr(render, "render_png", png)
    return calls


@pytest.mark.parametrize(
    ("fmt", "content_type", "magic"),
    [("svg", "image/svg+xml", b"<svg"), ("png", "image/png", b"\x89PNG\r\n\x1a\n")],
)
def test_page_diagram_has_its_content_type_and_is_cached(
    client: Client, slug: str, renders: list[str], fmt: str, content_type: str, magic: bytes
) -> None:
    first = client.get(f"/a/{slug}/diagram/1.{fmt}")
    assert first.status_code == 200
    assert first["Content-Type"] == content_type
    assert magic in first.content[:400]
    assert first["X-Meshviz-Cache"] == "miss"

    second = client.get(f"/a/{slug}/diagram/1.{fmt}")
    assert second["X-Meshviz-Cache"] == "hit"
    assert second.content == first.content
    assert renders == [fmt]  # Graphviz ran once


def test_api_diagram_by_connection_number(client: Client, slug: str, renders: list[str]) -> None:
    svg = client.get(f"/api/v1/analyses/{slug}/diagram.svg", {"connection": 2}, HTTP_ACCEPT="image/svg+xml")
    assert svg.status_code == 200 and svg["Content-Type"] == "image/svg+xml"
    assert b"outbound" in svg.content
    # the same diagram as the page's: from the cache
    assert client.get(f"/a/{slug}/diagram/2.svg")["X-Meshviz-Cache"] == "hit"
    png = client.get(f"/api/v1/analyses/{slug}/diagram.png", HTTP_ACCEPT="image/png")  # default: connection 1
    assert png.status_code == 200 and png["Content-Type"] == "image/png"
    assert renders == ["svg", "png"]


@pytest.mark.parametrize(
    "url",
    [
        "/a/{slug}/diagram/0.svg",
        "/a/{slug}/diagram/3.svg",
        "/a/{slug}/diagram/1.gif",
        "/api/v1/analyses/{slug}/diagram.svg?connection=9",
        "/api/v1/analyses/{slug}/diagram.svg?connection=x",
        "/api/v1/analyses/{slug}/diagram.pdf",
    ],
)
def test_bad_connection_number_or_format_is_404(client: Client, slug: str, url: str) -> None:
    assert client.get(url.format(slug=slug)).status_code == 404


def test_graphviz_failure_is_503_with_a_json_error(client: Client, slug: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(dot: str, *a: Any, **kw: Any) -> bytes:
        raise render.DiagramError("Graphviz is not installed: /usr/bin/dot not found")

    monkeypatch.setattr(render, "render_svg", broken)
    for url in (f"/a/{slug}/diagram/1.svg", f"/api/v1/analyses/{slug}/diagram.svg"):
        response = client.get(url)
        assert response.status_code == 503
        error = response.json()["errors"][0]
        assert error["source"] == "diagram" and "not installed" in error["message"]
    # the page still renders, saying why the diagram is missing
    page = client.get(f"/a/{slug}/").content.decode()
    assert "The diagram is unavailable" in page and "<svg" not in page


def test_the_same_story_in_another_analysis_is_not_rendered_again(
    client: Client, slug: str, renders: list[str], django_capture_on_commit_callbacks: Any
) -> None:
    """Diagrams are cached by what they draw, not by analysis: a second analysis of the same evidence reuses it."""
    first = client.get(f"/a/{slug}/diagram/1.svg")
    other = from_example(client, django_capture_on_commit_callbacks).slug
    assert other != slug
    again = client.get(f"/a/{other}/diagram/1.svg")
    assert (first["X-Meshviz-Cache"], again["X-Meshviz-Cache"]) == ("miss", "hit")
    assert again.content == first.content
    assert renders == ["svg"]
