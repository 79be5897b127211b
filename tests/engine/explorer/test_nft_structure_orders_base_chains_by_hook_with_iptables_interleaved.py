"""The structure of an nft pod: tables with their base chains (type, hook, priority, policy) and regular chains, sets
and maps with their type, flags and elements (capped, counted), and per hook the order in which iptables' tables and
nft base chains run, as the simulator runs them."""

from __future__ import annotations

from meshviz.engine.core.model import Family
from meshviz.engine.explorer.nft_view import nft_structure
from meshviz.engine.nftables.parser import parse_nftables

from .nft_support import IPTABLES_NFT_LIST, KUBE_PROXY_LIST, TPROXY_LIST


def _order(view: dict[str, object], hook: str) -> list[tuple[str, str]]:
    hooks = view["hooks"]
    assert isinstance(hooks, list)
    slots = next(h["slots"] for h in hooks if h["hook"] == hook)
    return [(s["kind"], f"{s['table']} {s.get('chain', '')}".strip()) for s in slots]


def test_istio_nft_chains_sit_between_iptables_tables_by_priority() -> None:
    rs = parse_nftables(TPROXY_LIST).ruleset
    view = nft_structure(rs, {Family.IPV4: {"mangle", "nat"}}, family=Family.IPV4)
    assert _order(view, "PREROUTING") == [
        ("nft", "inet istio-proxy-raw prerouting"),  # raw -300
        ("conntrack", "conntrack"),  # -200
        # -150: iptables' tables are taken as the oldest (the listing does not show them): nft runs first
        ("nft", "inet istio-proxy-mangle prerouting"),
        ("iptables", "mangle"),
        ("nft", "inet istio-proxy-nat prerouting"),  # -100, inside the NAT core with iptables' nat
        ("iptables", "nat"),
    ]
    # a hook with only iptables' nat: the tables the iptables evidence does not have are not listed
    assert _order(view, "INPUT") == [("iptables", "mangle"), ("iptables", "nat")]
    mangle = next(t for t in view["tables"] if t["label"] == "inet istio-proxy-mangle")  # type: ignore[union-attr]
    base = {c["name"]: c for c in mangle["chains"] if c["base"]}
    prerouting = base["prerouting"]
    assert (prerouting["type"], prerouting["hook"], prerouting["priority"], prerouting["policy"]) == (
        "filter",
        "prerouting",
        -150,
        "accept",
    )
    assert base["output"]["type"] == "route"
    regular = [c for c in mangle["chains"] if not c["base"]]
    assert {c["name"] for c in regular} >= {"istio-divert", "istio-tproxy", "istio-inbound"}
    assert all(c["policy"] is None and c["hook"] is None for c in regular)


def test_iptables_nft_tables_in_the_listing_are_in_the_hook_order_and_marked() -> None:
    view = nft_structure(parse_nftables(IPTABLES_NFT_LIST).ruleset, {}, family=Family.IPV4)
    assert _order(view, "PREROUTING") == [
        ("nft", "ip raw PREROUTING"),
        ("conntrack", "conntrack"),
        ("nft", "ip mangle PREROUTING"),
        ("nft", "ip nat PREROUTING"),
    ]
    hooks = view["hooks"]
    assert isinstance(hooks, list)
    assert all(s["iptables_nft"] for h in hooks for s in h["slots"] if s["kind"] == "nft")


def test_sets_and_maps_show_type_flags_and_a_capped_element_list() -> None:
    rs = parse_nftables(KUBE_PROXY_LIST).ruleset
    view = nft_structure(rs, max_elements=5)
    sets = {s["name"]: s for t in view["tables"] for s in t["sets"]}  # type: ignore[union-attr]
    m = sets["service-ips"]
    assert m["kind"] == "map" and m["type"] == "ipv4_addr . inet_proto . inet_service : verdict"
    assert m["count"] == len(rs.tables[0].set("service-ips").elements) > 5  # type: ignore[union-attr]
    assert len(m["elements"]) == 5 and " : goto service-" in m["elements"][0]
    assert sets["cluster-ips"]["kind"] == "set" and sets["cluster-ips"]["type"] == "ipv4_addr"
