"""Where Envoy dials: the original destination (ORIGINAL_DST), the first endpoint (STATIC/EDS), or a DNS name."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from meshviz.engine.envoy import EnvoyConfig, parse_config_dump, upstream_target

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "envoy"


@cache
def load(name: str) -> EnvoyConfig:
    return parse_config_dump((FIXTURES / name).read_text(), name).config


GEO = "istio-1.18-sidecar-geo-virtualInbound-error-state.json"


def test_original_dst_dials_the_original_destination() -> None:
    c = load(GEO)
    cluster = c.cluster("inbound|8083||")
    assert cluster is not None
    t = upstream_target(cluster, ("172.16.188.31", 8083))
    assert t.as_tuple() is not None and str(t.ip) == "172.16.188.31" and t.port == 8083
    assert upstream_target(cluster).as_tuple() is None


def test_eds_cluster_takes_the_endpoints_from_the_dump() -> None:
    c = load(GEO)
    cluster = c.cluster("outbound|27017||mongodb-geo.hr2.svc.cluster.local")
    assert cluster is not None and cluster.endpoints_source == "eds"
    t = upstream_target(cluster)
    assert (str(t.ip), t.port) == ("172.16.188.42", 27017)
    assert "EDS" in t.explanation[0]


def test_static_cluster_lists_all_endpoints() -> None:
    c = load("istio-1.3-sidecar-productpage-bookinfo.json")
    cluster = c.cluster("inbound|9080|http|productpage.default.svc.cluster.local")
    assert cluster is not None
    t = upstream_target(cluster)
    assert (str(t.ip), t.port) == ("127.0.0.1", 9080)
    assert [e.address.describe() for e in t.endpoints] == ["127.0.0.1:9080"]


def test_strict_dns_host_is_reported_not_resolved() -> None:
    c = load("istio-1.4-sidecar-productpage.json")
    dns = [x for x in c.clusters if x.type == "STRICT_DNS"]
    assert dns
    t = upstream_target(dns[0])
    assert t.ip is None and t.host is not None and t.port is not None
    assert "resolved by DNS" in t.explanation[0]


def test_eds_without_endpoints_section_and_blackhole() -> None:
    legacy = load("istio-1.2-sidecar-ratings-legacy-virtual-listener.json")
    eds = next(x for x in legacy.clusters if x.type == "EDS")
    t = upstream_target(eds)
    assert t.ip is None and "no EndpointsConfigDump" in t.explanation[0]
    geo = load(GEO)
    blackhole = geo.cluster("BlackHoleCluster")
    assert blackhole is not None
    assert upstream_target(blackhole).ip is None
