"""For chat: a bot posts a case, fetches the REDIRECT vs TPROXY diagram, the summary in every format and the light
verdicts; made public, the permalink unfurls (Open Graph, Twitter card) with a 1200 x 630 PNG served without login,
while a private one reveals nothing."""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from meshviz.analyses import chat
from meshviz.analyses.models import Analysis

pytestmark = pytest.mark.django_db


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _meta(page: str, prop: str) -> str | None:
    m = re.search(rf'<meta (?:property|name)="{re.escape(prop)}" content="([^"]*)"', page)
    return m.group(1) if m else None


def test_a_bot_posts_a_case_draws_the_comparison_and_the_public_permalink_unfurls(
    api: APIClient, create: Callable[..., Any], anon_client: Client
) -> None:
    body = create().json()
    slug = body["slug"]
    assert Analysis.objects.get(slug=slug).state == "done"

    svg = api.get(f"/api/v1/analyses/{slug}/comparison/diagram.svg")
    assert svg.status_code == 200 and svg["Content-Type"] == "image/svg+xml"
    text = svg.content.decode()
    assert "REDIRECT" in text and "TPROXY" in text and "(as uploaded)" in text and "(derived)" in text
    png = api.get(f"/api/v1/analyses/{slug}/comparison/diagram.png?connection=1")
    assert png.status_code == 200 and png["Content-Type"] == "image/png"
    assert api.get(f"/api/v1/analyses/{slug}/comparison/diagram.svg?connection=9").status_code == 404

    # private: an anonymous unfurler gets the login page (no metadata) and no image
    private_page = anon_client.get(f"/a/{slug}/")
    assert private_page.status_code == 302
    assert anon_client.get(f"/a/{slug}/card.png").status_code == 404

    assert api.post(f"/api/v1/analyses/{slug}/sharing/", {"public": True}, format="json").status_code == 200

    page = anon_client.get(f"/a/{slug}/").content.decode()
    title, description, image = _meta(page, "og:title"), _meta(page, "og:description"), _meta(page, "og:image")
    assert title and "the application sees 127.0.0.6" in title
    assert description and "127.0.0.6" in description and "`" not in description  # the cause, in plain words
    assert _meta(page, "twitter:card") == "summary_large_image"
    assert image == f"http://testserver/a/{slug}/card.png"
    card = anon_client.get(image.removeprefix("http://testserver"))
    assert card.status_code == 200 and card["Content-Type"] == "image/png"
    assert _png_size(card.content) == (1200, 630)


def test_a_private_permalink_page_carries_no_preview(client_for_owner: Client, done_analysis: Analysis) -> None:
    page = client_for_owner.get(done_analysis.permalink_path).content.decode()
    assert _meta(page, "og:title") is None and _meta(page, "og:image") is None


@pytest.fixture
def client_for_owner(done_analysis: Analysis) -> Client:
    c = Client()
    assert done_analysis.owner is not None
    c.force_login(done_analysis.owner)
    return c


def test_summary_in_text_markdown_and_slack_block_kit(api: APIClient, done_analysis: Analysis) -> None:
    url = f"/api/v1/analyses/{done_analysis.slug}/summary"
    permalink = f"http://testserver/a/{done_analysis.slug}/"

    text = api.get(url, {"format": "text"})
    assert text.status_code == 200 and text["Content-Type"].startswith("text/plain")
    lines = text.content.decode().splitlines()
    assert "the application sees 127.0.0.6" in lines[0]
    assert lines[1].startswith("Cause: ")
    assert lines[2].startswith("Fix (switch the workload to TPROXY interception): kubectl ")
    assert lines[-1] == permalink

    md = api.get(url, {"format": "markdown"})
    assert md.status_code == 200 and md["Content-Type"].startswith("text/markdown")
    assert "**Cause:**" in md.content.decode() and f"]({permalink})" in md.content.decode()

    slack = api.get(url, {"format": "slack"})
    assert slack.status_code == 200
    payload = slack.json()
    assert "127.0.0.6" in payload["text"]
    kinds = [b["type"] for b in payload["blocks"]]
    assert kinds == ["section", "section", "section", "actions"]
    assert "*Cause:*" in payload["blocks"][1]["text"]["text"]
    assert "```kubectl " in payload["blocks"][2]["text"]["text"]
    assert payload["blocks"][3]["elements"][0]["url"] == permalink

    assert api.get(url, {"format": "html"}).status_code == 400


def test_verdicts_are_small_whatever_the_evidence(api: APIClient, done_analysis: Analysis) -> None:
    full = api.get(f"/api/v1/analyses/{done_analysis.slug}/")
    light = api.get(f"/api/v1/analyses/{done_analysis.slug}/verdicts/")
    assert light.status_code == 200
    assert len(light.content) < chat.MAX_VERDICT_BYTES < len(full.content)
    doc = light.json()
    assert doc["permalink"] == f"http://testserver/a/{done_analysis.slug}/"
    first = doc["connections"][0]
    assert first["app_peer_ip"] == "127.0.0.6" and first["cause"]
    assert doc["fix"]["verified"] is True and doc["fix"]["first_command"].startswith("kubectl ")

    # a huge result still gives a small document
    done_analysis.results = {
        **(done_analysis.results or {}),
        "stories": [dict(done_analysis.results["stories"][0], verdict_line="x" * 5000)] * 200,  # type: ignore[index]
        "summary": "y" * 100_000,
    }
    done_analysis.save()
    big = api.get(f"/api/v1/analyses/{done_analysis.slug}/verdicts/")
    assert len(big.content) < chat.MAX_VERDICT_BYTES
    assert json.loads(big.content)["connections_total"] == 200


def test_every_inbound_connection_is_compared_and_drawn(
    api: APIClient, create: Callable[..., Any], client_for_owner_of: Callable[[str], Client]
) -> None:
    conns = [
        {"direction": "inbound", "client": "10.255.0.1:40000", "port": 8083},
        {"direction": "inbound", "client": "192.0.2.7:51000", "port": 8083},
    ]
    slug = create(connections=conns).json()["slug"]
    compared = api.get(f"/api/v1/analyses/{slug}/comparison/").json()["comparison"]["connections"]
    assert [c["connection"]["client"] for c in compared] == ["10.255.0.1:40000", "192.0.2.7:51000"]
    second = api.get(f"/api/v1/analyses/{slug}/comparison/diagram.svg?connection=2")
    assert second.status_code == 200 and "192.0.2.7:51000" in second.content.decode()
    page = client_for_owner_of(slug).get(f"/a/{slug}/").content.decode()
    assert page.count('class="diagram compare-diagram"') == 2
    assert f'href="/a/{slug}/compare/2.png"' in page


@pytest.fixture
def client_for_owner_of() -> Callable[[str], Client]:
    def _client(slug: str) -> Client:
        c = Client()
        owner = Analysis.objects.get(slug=slug).owner
        assert owner is not None
        c.force_login(owner)
        return c

    return _client


def test_summary_with_a_trailing_slash_is_sent_on_with_its_query(api: APIClient, done_analysis: Analysis) -> None:
    bare = api.get(f"/api/v1/analyses/{done_analysis.slug}/summary", {"format": "text"})
    slash = api.get(f"/api/v1/analyses/{done_analysis.slug}/summary/", {"format": "text"})
    assert (slash.status_code, slash["Location"]) == (308, f"/api/v1/analyses/{done_analysis.slug}/summary?format=text")
    followed = api.get(f"/api/v1/analyses/{done_analysis.slug}/summary/", {"format": "text"}, follow=True)
    assert followed.status_code == 200 and followed.content == bare.content
