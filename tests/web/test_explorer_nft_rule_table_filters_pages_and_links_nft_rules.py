"""The rule table of an nft pod (`?backend=nft`, the default when the pod has nft rules and no iptables rules): every
nft rule with its table "FAMILY NAME", chain, index, text, line and explanation, filtered and paged on the server like
iptables' rules, in the page, its JSON and the API."""

from __future__ import annotations

import pytest

from tests.web.explorer_support import NFT_TPROXY, analysed_example, analysed_nft, client_for, explorer_user

pytestmark = pytest.mark.django_db


def test_an_nft_pod_lists_its_nft_rules_by_default() -> None:
    user = explorer_user()
    analysis = analysed_nft(user)
    client = client_for(user)
    data = client.get(f"/a/{analysis.slug}/rules/", {"format": "json"}).json()
    assert data["backend"] == "nft"
    assert data["total"] == data["matched"] == len(data["rules"]) == 51
    lines = NFT_TPROXY.splitlines()
    for row in data["rules"]:
        assert row["backend"] == "nft" and row["table"].startswith(row["family"] + " ")
        assert lines[row["line"] - 1].strip() == row["original"]
    hit = [r for r in data["rules"] if r["hits"]]
    assert ("inet istio-proxy-mangle", "istio-tproxy", 1) in {(r["table"], r["chain"], r["index"]) for r in hit}
    page = client.get(f"/a/{analysis.slug}/rules/").content.decode()
    assert "nft table" in page and "inet istio-proxy-mangle" in page and "istio-tproxy" in page


def test_filters_and_pages_are_server_side() -> None:
    user = explorer_user()
    analysis = analysed_nft(user)
    client = client_for(user)
    url = f"/a/{analysis.slug}/rules/"
    chain = client.get(url, {"format": "json", "table": "inet istio-proxy-nat", "chain": "istio-output"}).json()
    assert {(r["table"], r["chain"]) for r in chain["rules"]} == {("inet istio-proxy-nat", "istio-output")}
    assert [r["index"] for r in chain["rules"]] == list(range(1, chain["matched"] + 1))
    redirects = client.get(url, {"format": "json", "target": "redirect"}).json()
    assert redirects["matched"] >= 2 and all("redirect to" in r["text"] for r in redirects["rules"])
    text = client.get(url, {"format": "json", "q": "transparent socket"}).json()  # the explanation is searched
    assert text["matched"] >= 1 and all("tproxy" in r["text"] for r in text["rules"])
    paged = client.get(url, {"format": "json", "per_page": 10, "page": 2}).json()
    assert (paged["page"], paged["pages"], len(paged["rules"])) == (2, 6, 10)
    assert paged["rules"][0] == client.get(url, {"format": "json"}).json()["rules"][10]
    bad = client.get(url, {"format": "json", "per_page": "ten"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["source"] == "per_page"
    assert client.get(url, {"backend": "pf"}).status_code == 404


def test_the_api_answers_the_same_page() -> None:
    user = explorer_user()
    analysis = analysed_nft(user)
    client = client_for(user)
    query = {"backend": "nft", "table": "inet istio-proxy-mangle"}
    api = client.get(f"/api/v1/analyses/{analysis.slug}/rules/", query).json()
    page = client.get(f"/a/{analysis.slug}/rules/", {**query, "format": "json"}).json()
    assert api == page and api["matched"] > 0


def test_a_pod_with_both_backends_switches_between_them() -> None:
    user = explorer_user()
    iptables_only = analysed_example(user)
    both = analysed_nft(user, iptables=iptables_only.iptables)
    client = client_for(user)
    url = f"/a/{both.slug}/rules/"
    assert client.get(url, {"format": "json"}).json()["backend"] == "iptables"
    assert client.get(url, {"format": "json", "backend": "nft"}).json()["total"] == 51
    page = client.get(url).content.decode()
    assert '<select name="backend">' in page and '<option value="nft" >nftables</option>' in page
