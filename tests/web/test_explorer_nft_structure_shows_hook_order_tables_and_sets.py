"""The structure page of an nft pod: per hook the functions a packet meets in order (nft base chains between
iptables' tables by priority, iptables-nft tables marked), every nft table with its base chains (type, hook,
priority, policy) and regular chains linked to the rule table, and its sets and maps with type, flags and elements;
`?format=json` answers the same."""

from __future__ import annotations

import pytest

from tests.web.explorer_support import NFT_LISTED, analysed_example, analysed_nft, client_for, explorer_user

pytestmark = pytest.mark.django_db


def test_hook_order_and_tables_of_an_nft_pod() -> None:
    user = explorer_user()
    iptables = analysed_example(user).iptables
    analysis = analysed_nft(user, iptables=iptables)
    client = client_for(user)
    data = client.get(f"/a/{analysis.slug}/structure/", {"format": "json"}).json()["nftables"]
    prerouting = next(h for h in data["hooks"] if h["hook"] == "PREROUTING")["slots"]
    order = [(s["kind"], s["table"], s.get("chain")) for s in prerouting]
    assert order.index(("nft", "inet istio-proxy-raw", "prerouting")) < order.index(("conntrack", "conntrack", None))
    assert order.index(("nft", "inet istio-proxy-mangle", "prerouting")) < order.index(("iptables", "mangle", None))
    assert all(s["url"].startswith(f"/a/{analysis.slug}/rules/?") for s in prerouting if s["kind"] != "conntrack")
    page = client.get(f"/a/{analysis.slug}/structure/").content.decode()
    assert 'id="nft-hook-order"' in page and "table inet istio-proxy-mangle" in page
    assert "backend=nft&amp;table=inet+istio-proxy-mangle&amp;chain=istio-tproxy" in page
    assert "regular chain" in page and "filter" in page


def test_sets_and_maps_of_kube_proxy_are_listed() -> None:
    user = explorer_user()
    listing = (NFT_LISTED / "kube-proxy-20-services.nft-list").read_text()
    analysis = analysed_nft(user, nftables=listing)
    client = client_for(user)
    data = client.get(f"/a/{analysis.slug}/structure/", {"format": "json"}).json()["nftables"]
    sets = {s["name"]: s for t in data["tables"] for s in t["sets"]}
    assert sets["service-ips"]["kind"] == "map" and sets["service-ips"]["count"] == 20
    assert sets["service-ips"]["type"] == "ipv4_addr . inet_proto . inet_service : verdict"
    page = client.get(f"/a/{analysis.slug}/structure/").content.decode()
    assert "<code>@service-ips</code>" in page and "20 elements" in page
    assert "172.16.0.10 . tcp . 80 : goto service-00000000-ns0/svc0/tcp/http" in page


def test_the_graph_draws_nft_chains_linked_to_their_rules() -> None:
    user = explorer_user()
    analysis = analysed_nft(user)
    page = client_for(user).get(f"/a/{analysis.slug}/structure/").content.decode()
    assert 'id="chain:inet%20istio&#45;proxy&#45;mangle:istio&#45;tproxy"' in page
    assert f"/a/{analysis.slug}/rules/inet%20istio-proxy-mangle/istio-tproxy/1" in page
