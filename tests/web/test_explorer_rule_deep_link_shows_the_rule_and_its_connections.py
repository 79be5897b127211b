"""/a/<slug>/rules/<table>/<chain>/<n> renders the table with that rule highlighted, its explanation, the connections
that hit it and the trace steps around it; ?fragment=1 is the detail panel alone (explorer.js swaps it in)."""

from __future__ import annotations

import re

import pytest
from django.utils.html import escape

from meshviz.analyses import services
from tests.web.explorer_support import analysed_example, client_for, explorer_user

pytestmark = pytest.mark.django_db


def test_deep_link_highlights_the_rule_with_its_connections() -> None:
    user = explorer_user()
    analysis = analysed_example(user)
    client = client_for(user)
    rules = client.get(f"/a/{analysis.slug}/rules/", {"format": "json", "target": "TPROXY"}).json()["rules"]
    rule = next(r for r in rules if r["hits"])
    url = f"/a/{analysis.slug}/rules/{rule['table']}/{rule['chain']}/{rule['index']}"
    assert rule["url"] == url

    response = client.get(url)
    assert response.status_code == 200
    page = response.content.decode()
    selected = re.findall(r'<tr class="rule-row[^"]*selected current"[^>]*>', page)
    assert len(selected) == 1 and f'data-url="{url}"' in selected[0] and 'aria-current="true"' in selected[0]
    detail = page[page.index('<aside class="rule-detail"') :]
    assert escape(rule["explanation"]) in detail
    label = services.connection_label(analysis.connections[0], str(analysis.pod_ip))
    assert f'href="/a/{analysis.slug}/#connection-1"' in detail and escape(label) in detail
    # the steps around it: the rule's own step is marked, with its neighbours
    assert '<li class="this-rule">' in detail
    assert "TPROXY" in detail

    data = client.get(url, {"format": "json"}).json()
    assert [c["number"] for c in data["connections"]] == rule["hits"]
    assert data["steps"] and all(s["steps"][s["at"]]["index"] == rule["index"] for s in data["steps"])

    fragment = client.get(url, {"fragment": "1"}).content.decode()
    assert fragment.lstrip().startswith("<article") and "<html" not in fragment
    assert escape(rule["explanation"]) in fragment


def test_a_rule_no_connection_hit_says_so() -> None:
    user = explorer_user()
    analysis = analysed_example(user)
    client = client_for(user)
    rules = client.get(f"/a/{analysis.slug}/rules/", {"format": "json"}).json()["rules"]
    cold = next(r for r in rules if not r["hits"])
    page = client.get(cold["url"]).content.decode()
    assert "No analysed connection matched this rule." in page
    assert escape(cold["explanation"]) in page
