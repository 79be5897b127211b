"""Every corpus dump parses without errors, and the facts meshviz relies on come out right."""

from __future__ import annotations

import time
from collections import Counter
from functools import cache
from pathlib import Path

import pytest

from meshviz.engine.envoy import EnvoyConfig, parse_config_dump

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "envoy"
DUMPS = sorted(p.name for p in FIXTURES.glob("*.json"))
GEO = "istio-1.18-sidecar-geo-virtualInbound-error-state.json"


@cache
def load(name: str) -> EnvoyConfig:
    result = parse_config_dump((FIXTURES / name).read_text(), name)
    return result.config


def test_all_corpus_dumps_are_fixtures() -> None:
    assert len(DUMPS) == 9  # the 8 corpus dumps + the derived TPROXY one
    assert "tproxy-original-src.json" in DUMPS


@pytest.mark.parametrize("name", DUMPS)
def test_dump_parses_without_errors(name: str) -> None:
    result = parse_config_dump((FIXTURES / name).read_text(), name)
    assert result.errors == ()
    assert result.config.errors == ()
    assert result.config.listeners or result.config.clusters or result.config.endpoint_configs


@pytest.mark.parametrize(
    ("name", "node_id", "mode", "version", "listeners", "clusters"),
    [
        (GEO, "sidecar~172.16.188.31~geo-5c54dcd5bd-z5ghf.hr2~hr2.svc.cluster.local", "REDIRECT", "1.18.2", 144, 143),
        (
            "istio-1.2-sidecar-ratings-legacy-virtual-listener.json",
            "sidecar~172.30.144.156~ratings-v1-f745cf57b-vfwcv.bookinfo~bookinfo.svc.cluster.local",
            "REDIRECT",
            "release-1.2-20190709-09-16",
            41,
            58,
        ),
        (
            "istio-1.3-sidecar-productpage-bookinfo.json",
            "sidecar~172.30.150.216~productpage-v1-7bbd79f8fd-k6j79.default~default.svc.cluster.local",
            "REDIRECT",
            "1.3.0-rc.2",
            52,
            83,
        ),
        (
            "istio-1.4-sidecar-productpage.json",
            "sidecar~172.30.144.174~productpage-v1-c7765c886-v99jb.default~default.svc.cluster.local",
            "REDIRECT",
            "1.4-alpha.945b2e081e817e63fab6c1112c55d585073b0b7a",
            7,
            18,
        ),
        (
            "istio-testframework-sidecar-echo-a-legacy-virtual-listener.json",
            "sidecar~10.40.3.59~a-6bb6dbdcc5-z58cx.apps-1-99281~apps-1-99281.svc.cluster.local",
            "REDIRECT",
            "1.0-dev",
            53,
            87,
        ),
        (
            "istio-1.21-waypoint-httpbin-not-sidecar.json",
            "waypoint~192.168.252.229~httpbin-istio-waypoint-58f646c5ff-dbfkz.default~default.svc.cluster.local",
            None,
            "1.21.0-1226",
            2,
            3,
        ),
        (
            "tproxy-original-src.json",
            "sidecar~172.16.188.31~geo-5c54dcd5bd-z5ghf.hr2~hr2.svc.cluster.local",
            "TPROXY",
            "1.18.2",
            6,
            12,
        ),
    ],
)
def test_node_and_counts(
    name: str, node_id: str, mode: str | None, version: str, listeners: int, clusters: int
) -> None:
    c = load(name)
    assert c.node_id == node_id
    assert c.interception_mode == mode
    assert c.istio_version == version
    assert len(c.listeners) == listeners
    assert len(c.clusters) == clusters
    if "waypoint" in name:
        assert c.bootstrap_admin is None  # this dump's bootstrap holds only the node
    else:
        assert c.bootstrap_admin is not None and c.bootstrap_admin.address is not None
        assert c.bootstrap_admin.address.describe() == "127.0.0.1:15000"


def test_geo_dump_sections_and_listener_states() -> None:
    c = load(GEO)
    assert c.sections == (
        "BootstrapConfigDump",
        "ClustersConfigDump",
        "EndpointsConfigDump",
        "ListenersConfigDump",
        "ScopedRoutesConfigDump",
        "RoutesConfigDump",
        "SecretsConfigDump",
    )
    assert Counter(lst.state for lst in c.listeners) == {"active": 142, "error": 2}
    assert Counter(x.type for x in c.clusters) == {"EDS": 122, "ORIGINAL_DST": 15, "STATIC": 5, "STRICT_DNS": 1}
    assert len(c.route_configs) == 92
    assert len(c.endpoint_configs) == 143
    assert c.secrets == ("default", "ROOTCA")
    # 139 per-service listeners have bind_to_port: false; only 15001 and the two static ones bind.
    assert sum(1 for lst in c.listeners if not lst.bind_to_port) == 139


def test_geo_virtual_inbound_is_in_error_state_and_reported() -> None:
    c = load(GEO)
    assert c.listener("virtualInbound") is None  # no active virtualInbound
    failed = [lst for lst in c.listeners if lst.name == "virtualInbound"]
    assert len(failed) == 2 and all(lst.state == "error" for lst in failed)
    assert failed[0].address is not None and failed[0].address.describe() == "0.0.0.0:15006"
    assert failed[0].error_detail is not None and "LuaValidationError" in failed[0].error_detail
    assert any("virtualInbound appears 2 times in state error" in w.message for w in c.warnings)


def test_geo_inbound_cluster_binds_127_0_0_6() -> None:
    c = load(GEO)
    for name in ("inbound|8083||", "InboundPassthroughClusterIpv4"):
        cluster = c.cluster(name)
        assert cluster is not None and cluster.type == "ORIGINAL_DST"
        bc = cluster.upstream_bind_config
        assert bc is not None and bc.source_address is not None
        assert (bc.source_address.address, bc.source_address.port) == ("127.0.0.6", 0)
    passthrough = c.cluster("PassthroughCluster")
    assert passthrough is not None and passthrough.type == "ORIGINAL_DST" and passthrough.upstream_bind_config is None
    vo = c.listener("virtualOutbound")
    assert vo is not None and vo.use_original_dst and vo.address is not None and vo.address.port == 15001


def test_geo_eds_endpoints_attached_from_endpoints_section() -> None:
    c = load(GEO)
    eds = [x for x in c.clusters if x.type == "EDS"]
    assert {x.endpoints_source for x in eds} == {"eds"}
    consul = c.cluster("outbound|8500||consul.hr2.svc.cluster.local")
    assert consul is not None
    assert [e.address.describe() for e in consul.endpoints] == ["172.16.188.57:8500"]


@pytest.mark.parametrize(
    ("name", "pod_ip", "inbound_chains", "passthrough_v6"),
    [
        ("istio-1.3-sidecar-productpage-bookinfo.json", "172.30.150.216", 7, "::6"),
        ("istio-1.4-sidecar-productpage.json", "172.30.144.174", 5, "::6"),
    ],
)
def test_istio_1_3_and_1_4_virtual_listeners(name: str, pod_ip: str, inbound_chains: int, passthrough_v6: str) -> None:
    c = load(name)
    vi = c.listener("virtualInbound")
    vo = c.listener("virtualOutbound")
    assert vi is not None and vo is not None
    # 15006 restores the destination with the original_dst listener filter; it does not hand off.
    assert not vi.use_original_dst
    assert vi.listener_filters[0].kind == "envoy.filters.listener.original_dst"
    assert len(vi.filter_chains) == inbound_chains
    assert vo.use_original_dst
    v6 = c.cluster("InboundPassthroughClusterIpv6")
    assert v6 is not None and v6.upstream_bind_config is not None
    assert v6.upstream_bind_config.source_address is not None
    assert v6.upstream_bind_config.source_address.address == passthrough_v6
    # Before Istio 1.10 the per-port inbound clusters are STATIC to 127.0.0.1, with no bind.
    inbound = c.cluster("inbound|9080|http|productpage.default.svc.cluster.local")
    assert inbound is not None and inbound.type == "STATIC" and inbound.upstream_bind_config is None
    assert [e.address.describe() for e in inbound.endpoints] == ["127.0.0.1:9080"]
    assert c.node_id is not None and f"~{pod_ip}~" in c.node_id


def test_istio_1_4_ipv6_link_local_inbound_listener() -> None:
    c = load("istio-1.4-sidecar-productpage.json")
    lst = [x for x in c.listeners if x.address is not None and x.address.address == "fe80::10e7:52ff:fecd:198b"]
    assert len(lst) == 1 and lst[0].address is not None and lst[0].address.port == 9080
    assert not lst[0].bind_to_port  # v2 `deprecated_v1: {bind_to_port: false}`


@pytest.mark.parametrize(
    ("name", "virtual"),
    [
        ("istio-1.2-sidecar-ratings-legacy-virtual-listener.json", "virtual"),
        ("istio-testframework-sidecar-echo-a-legacy-virtual-listener.json", "virtual"),
    ],
)
def test_legacy_dumps_have_a_single_virtual_listener(name: str, virtual: str) -> None:
    c = load(name)
    v = c.listener(virtual)
    assert v is not None and v.use_original_dst and v.address is not None and v.address.port == 15001
    assert not any(x.address is not None and x.address.port == 15006 for x in c.listeners)
    # Their EDS clusters have no EndpointsConfigDump to take endpoints from.
    assert {x.endpoints_source for x in c.clusters if x.type == "EDS"} == {"eds-not-dumped"}
    # v2 `hosts` on the static bootstrap clusters.
    assert any(x.endpoints_source == "hosts" for x in c.clusters)


def test_listeners_only_dump() -> None:
    c = load("istio-sidecar-listeners-only-authz-testdata.json")
    assert c.sections == ("ListenersConfigDump",)
    assert c.node_id is None and c.clusters == ()
    assert len(c.listeners) == 29
    vi = c.listener("virtualInbound")
    assert vi is not None and len(vi.filter_chains) == 8 and vi.traffic_direction == "INBOUND"
    assert [f.kind for f in vi.listener_filters] == [
        "envoy.filters.listener.original_dst",
        "envoy.filters.listener.tls_inspector",
        "envoy.filters.listener.http_inspector",
    ]
    assert vi.listener_filters[1].disabled_ports == ((15006, 15007),)
    assert vi.listener_filters[2].disabled_ports == ((80, 81), (15006, 15007))
    ct = c.listener("connect_terminate")
    assert ct is not None and ct.address is not None and ct.address.port == 15008
    internal = c.listener("main_internal")
    assert internal is not None and internal.address is not None and internal.address.kind == "internal"


def test_endpoints_only_dump() -> None:
    c = load("istio-sidecar-endpoints-only-eds.json")
    assert c.sections == ("EndpointsConfigDump",)
    assert len(c.endpoint_configs) == 37
    reviews = c.load_assignment("outbound|9080||reviews.default.svc.cluster.local")
    assert reviews is not None
    assert [e.address.describe() for e in reviews.endpoints] == [
        "10.244.0.192:9080",
        "10.244.0.193:9080",
        "10.244.0.195:9080",
    ]
    xds = c.load_assignment("xds-grpc")
    assert xds is not None and xds.endpoints[0].address.kind == "pipe"
    empty = c.load_assignment("InboundPassthroughClusterIpv4")
    assert empty is not None and empty.endpoints == ()


def test_waypoint_is_not_a_sidecar() -> None:
    c = load("istio-1.21-waypoint-httpbin-not-sidecar.json")
    assert c.interception_mode is None
    assert not any(x.address is not None and x.address.port in (15001, 15006) for x in c.listeners)
    main = c.listener("main_internal")
    assert main is not None and main.filter_chain_matcher
    assert any("filter_chain_matcher" in w.message for w in c.warnings)


def test_large_dump_parses_well_under_a_second() -> None:
    text = (FIXTURES / GEO).read_text()
    assert len(text) > 2_000_000
    best = min(_timed(text) for _ in range(3))
    assert best < 1.0, f"parsing the 2.4 MB dump took {best:.2f}s"


def _timed(text: str) -> float:
    t0 = time.perf_counter()
    parse_config_dump(text, GEO)
    return time.perf_counter() - t0
