"""cluster_for: tcp_proxy's cluster, or the HTTP route's cluster through inline or RDS route configurations."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from meshviz.engine.envoy import (
    ConnInfo,
    EnvoyConfig,
    FilterChain,
    NetworkFilter,
    cluster_for,
    handoff,
    parse_config_dump,
    select_filter_chain,
)
from meshviz.engine.envoy.model import WeightedCluster

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "envoy"
TCP = "envoy.filters.network.tcp_proxy"
HCM = "envoy.filters.network.http_connection_manager"


@cache
def load(name: str) -> EnvoyConfig:
    return parse_config_dump((FIXTURES / name).read_text(), name).config


def test_tcp_proxy_cluster() -> None:
    chain = FilterChain(
        "c", 0, filters=(NetworkFilter("istio.stats", kind="istio.stats"), NetworkFilter(TCP, kind=TCP, cluster="x"))
    )
    sel = cluster_for(chain, config=EnvoyConfig())
    assert sel.cluster_name == "x" and sel.cluster is None
    assert sel.explanation == (f"tcp_proxy ({TCP}) → cluster x is not in the dump",)


def test_tcp_proxy_weighted_clusters_show_the_heaviest() -> None:
    wc = (WeightedCluster("a", 10), WeightedCluster("b", 90))
    chain = FilterChain("c", 0, filters=(NetworkFilter(TCP, kind=TCP, weighted_clusters=wc),))
    sel = cluster_for(chain, config=EnvoyConfig())
    assert sel.cluster_name == "b" and sel.weighted_clusters == wc


def test_chain_without_a_terminal_filter() -> None:
    chain = FilterChain(
        "c", 0, filters=(NetworkFilter("envoy.filters.network.rbac", kind="envoy.filters.network.rbac"),)
    )
    sel = cluster_for(chain, config=EnvoyConfig())
    assert sel.cluster_name is None and "neither tcp_proxy nor http_connection_manager" in sel.explanation[0]


def test_http_chain_needs_a_host_and_rds_must_be_in_the_dump() -> None:
    chain = FilterChain("c", 0, filters=(NetworkFilter(HCM, kind=HCM, route_config_name="9080"),))
    sel = cluster_for(chain, "reviews", "/", config=EnvoyConfig())
    assert sel.cluster_name is None and "not in the dump" in sel.explanation[0]
    c = load("istio-1.3-sidecar-productpage-bookinfo.json")
    sel = cluster_for(chain, config=c)
    assert sel.cluster_name is None and "give the Host" in sel.explanation[-1]
    sel = cluster_for(chain, "reviews:9080", "/", config=c)
    assert sel.cluster_name == "outbound|9080||reviews.default.svc.cluster.local"
    assert sel.cluster is not None and sel.cluster.type == "EDS"


def test_geo_outbound_http_story() -> None:
    """App → 10.68.144.213:8500 (consul): 15001 hands off; HTTP → RDS → EDS cluster."""
    c = load("istio-1.18-sidecar-geo-virtualInbound-error-state.json")
    vo = c.listener("virtualOutbound")
    assert vo is not None
    svc = handoff(c, vo, ("10.68.144.213", 8500))
    assert svc is not None
    http = select_filter_chain(
        svc, ConnInfo.of("10.68.144.213", 8500, "172.16.188.31", 40000, application_protocols=["http/1.1"])
    )
    assert http.chain is not None and not http.is_default
    sel = cluster_for(http.chain, "consul.hr2.svc.cluster.local:8500", "/v1/kv/x", config=c)
    assert sel.cluster_name == "outbound|8500||consul.hr2.svc.cluster.local"
    assert sel.explanation[0] == "http_connection_manager → RDS route config consul.hr2.svc.cluster.local:8500"
    # Not HTTP (no ALPN from http_inspector): the default chain's tcp_proxy to the same cluster.
    tcp = select_filter_chain(svc, ConnInfo.of("10.68.144.213", 8500, "172.16.188.31", 40000))
    assert tcp.chain is not None and tcp.is_default
    assert cluster_for(tcp.chain, config=c).cluster_name == "outbound|8500||consul.hr2.svc.cluster.local"


def test_unknown_outbound_destination_goes_to_passthrough() -> None:
    c = load("istio-1.18-sidecar-geo-virtualInbound-error-state.json")
    vo = c.listener("virtualOutbound")
    assert vo is not None and handoff(c, vo, ("93.184.216.34", 443)) is None
    sel = select_filter_chain(vo, ConnInfo.of("93.184.216.34", 443, "172.16.188.31", 40000))
    assert sel.chain is not None and sel.chain.label == "virtualOutbound-catchall-tcp"
    cs = cluster_for(sel.chain, config=c)
    assert cs.cluster is not None and cs.cluster.name == "PassthroughCluster" and cs.cluster.type == "ORIGINAL_DST"
    # A connection to 15001 itself is black-holed.
    loop = select_filter_chain(vo, ConnInfo.of("172.16.188.31", 15001, "172.16.188.31", 40000))
    assert loop.chain is not None and cluster_for(loop.chain, config=c).cluster_name == "BlackHoleCluster"
    assert "no endpoints" in cluster_for(loop.chain, config=c).explanation[-1]
