"""The structure view: "only what this connection hit" draws the chains, listener and cluster that connection went
through and leaves out the rest; SVG and PNG downloads."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from .helpers import from_example

pytestmark = pytest.mark.django_db


def test_only_what_connection_1_hit(client: Client, django_capture_on_commit_callbacks: Any) -> None:
    analysis = from_example(client, django_capture_on_commit_callbacks)
    url = f"/a/{analysis.slug}/structure/"
    everything = client.get(url).content.decode()
    focused = client.get(url, {"connection": "1"}).content.decode()
    assert "only what connection 1 hit" in everything
    assert 'aria-current="true">only what connection 1 hit' in focused
    # the inbound connection goes through nat ISTIO_INBOUND, not the outbound chains
    assert "ISTIO_INBOUND" in focused and "ISTIO_INBOUND" in everything
    assert "ISTIO_OUTPUT" in everything
    assert focused.count("<g id=") < everything.count("<g id=")
    # Envoy: the listener that accepted (virtualInbound) and its cluster, not the other listeners
    assert "virtualInbound" in focused
    assert "virtualOutbound" in everything and "virtualOutbound" not in focused

    svg = client.get(url, {"connection": "1", "download": "svg"})
    assert svg.status_code == 200 and svg["Content-Type"] == "image/svg+xml"
    assert "structure-1.svg" in svg["Content-Disposition"]
    png = client.get(url, {"download": "png"})
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_composer_graph_only_what_the_packet_hit(client: Client, django_capture_on_commit_callbacks: Any) -> None:
    analysis = from_example(client, django_capture_on_commit_callbacks)
    url = f"/a/{analysis.slug}/compose/"
    whole = client.get(url)
    assert whole.status_code == 200
    page = whole.content.decode()
    assert "only what this packet hit" in page
    only = client.get(url + "?" + page.split('only=1"')[0].rsplit('href="?', 1)[1].replace("&amp;", "&") + "only=1")
    assert only.status_code == 200
    focused = only.content.decode()
    assert 'aria-current="true">only what this packet hit' in focused
    assert focused.count("<g id=") < page.count("<g id=")


def test_overview_of_hooks_tables_and_chains_opens_the_chain(
    client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    analysis = from_example(client, django_capture_on_commit_callbacks)
    page = client.get(f"/a/{analysis.slug}/structure/").content.decode()
    overview = page[page.index('id="overview"') : page.index("</table>", page.index('id="overview"'))]
    assert '<th scope="row">PREROUTING</th>' in overview
    link = f"/a/{analysis.slug}/rules/?table=nat&amp;chain=PREROUTING"
    assert link in overview and "hit</span>" in overview
    rules = client.get(link.replace("&amp;", "&")).content.decode()
    assert "-A PREROUTING" in rules
