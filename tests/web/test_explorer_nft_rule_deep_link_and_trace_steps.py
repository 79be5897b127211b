"""An nft rule's deep link (`/a/<slug>/rules/<FAMILY NAME>/<chain>/<n>`): the rule, its explanation, the connections
that hit it and the trace steps around it; the composer's trace steps through nft rules link there; unknown nft
tables, chains and indexes are 404."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.web.explorer_support import analysed_nft, client_for, explorer_user

pytestmark = pytest.mark.django_db


def test_the_deep_link_shows_the_rule_its_connections_and_steps() -> None:
    user = explorer_user()
    analysis = analysed_nft(user)
    client = client_for(user)
    url = f"/a/{analysis.slug}/rules/{quote('inet istio-proxy-mangle')}/istio-tproxy/1"
    detail = client.get(url, {"format": "json"}).json()
    assert detail["rule"]["text"].startswith("meta l4proto tcp ip daddr != 127.0.0.1 tproxy ip to :15006")
    assert "transparent socket on :15006" in detail["rule"]["explanation"]
    assert [c["number"] for c in detail["connections"]] == detail["rule"]["hits"] == [1]
    step = detail["steps"][0]["steps"][detail["steps"][0]["at"]]
    assert (step["table"], step["chain"], step["index"]) == ("inet istio-proxy-mangle", "istio-tproxy", 1)
    page = client.get(url).content.decode()
    assert 'aria-current="true"' in page and "nft rule" in page
    assert "backend=nft" in page  # the what-if links edit the nft rule
    api = client.get(f"/api/v1/analyses/{analysis.slug}/rules/{quote('inet istio-proxy-mangle')}/istio-tproxy/1/")
    assert api.status_code == 200 and api.json() == detail


def test_unknown_nft_rules_are_404() -> None:
    user = explorer_user()
    analysis = analysed_nft(user)
    client = client_for(user)
    base = f"/a/{analysis.slug}/rules/"
    for path in ("inet%20istio-proxy-mangle/istio-tproxy/99", "inet%20nope/prerouting/1", "inet%20istio-proxy-nat/x/1"):
        assert client.get(base + path).status_code == 404, path


def test_the_composers_nft_steps_link_to_rules_that_open() -> None:
    user = explorer_user()
    analysis = analysed_nft(user)
    client = client_for(user)
    result = client.get(f"/a/{analysis.slug}/compose/", {"format": "json"}).json()
    links = [s["url"] for t in result["traces"] for s in t["steps"] if s.get("url")]
    assert any("istio-tproxy" in u for u in links)
    for url in links:
        assert client.get(url, {"format": "json"}).status_code == 200, url
