"""Istio's virtualInbound (15006) chains in real dumps: app port, unknown port, 15006 itself, TLS/ALPN."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from meshviz.engine.envoy import ConnInfo, EnvoyConfig, Listener, cluster_for, parse_config_dump, select_filter_chain

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "envoy"


@cache
def load(name: str) -> EnvoyConfig:
    return parse_config_dump((FIXTURES / name).read_text(), name).config


def virtual_inbound(name: str) -> tuple[EnvoyConfig, Listener]:
    c = load(name)
    vi = c.listener("virtualInbound")
    assert vi is not None
    return c, vi


def route(name: str, dst: str, port: int, **kw: object) -> tuple[str, str | None]:
    c, vi = virtual_inbound(name)
    sel = select_filter_chain(vi, ConnInfo.of(dst, port, "10.244.0.9", 51234, **kw))  # type: ignore[arg-type]
    assert sel.chain is not None, sel.explanation
    cs = cluster_for(sel.chain, "app.ns.svc.cluster.local", "/", config=c)
    return sel.chain.label, cs.cluster_name


AUTHZ = "istio-sidecar-listeners-only-authz-testdata.json"
TPROXY = "tproxy-original-src.json"


@pytest.mark.parametrize(
    ("name", "pod", "port", "chain", "cluster"),
    [
        (AUTHZ, "10.244.0.5", 80, "0.0.0.0_80", "inbound|80||"),
        (TPROXY, "172.16.188.31", 8083, "0.0.0.0_8083", "inbound|8083||"),
        (
            "istio-1.3-sidecar-productpage-bookinfo.json",
            "172.30.150.216",
            9080,
            "filter_chains[5]",
            "inbound|9080|http|productpage.default.svc.cluster.local",
        ),
        (
            "istio-1.4-sidecar-productpage.json",
            "172.30.144.174",
            15020,
            "filter_chains[4]",
            "inbound|15020|mgmt-15020|mgmtCluster",
        ),
    ],
)
def test_plaintext_tcp_to_an_app_port_picks_its_inbound_chain(
    name: str, pod: str, port: int, chain: str, cluster: str
) -> None:
    assert route(name, pod, port) == (chain, cluster)


@pytest.mark.parametrize(
    ("name", "pod", "chain"),
    [
        (AUTHZ, "10.244.0.5", "virtualInbound"),
        (TPROXY, "172.16.188.31", "virtualInbound"),
        ("istio-1.3-sidecar-productpage-bookinfo.json", "172.30.150.216", "filter_chains[0]"),
        ("istio-1.4-sidecar-productpage.json", "172.30.144.174", "filter_chains[0]"),
    ],
)
def test_unknown_port_picks_the_passthrough_chain(name: str, pod: str, chain: str) -> None:
    assert route(name, pod, 9999) == (chain, "InboundPassthroughClusterIpv4")


@pytest.mark.parametrize("name", [AUTHZ, TPROXY])
def test_connection_to_15006_itself_hits_the_blackhole(name: str) -> None:
    assert route(name, "10.244.0.5", 15006) == ("virtualInbound-blackhole", "BlackHoleCluster")


def test_istio_1_3_passthrough_ipv6() -> None:
    assert route("istio-1.3-sidecar-productpage-bookinfo.json", "fd00::5", 9999) == (
        "filter_chains[1]",
        "InboundPassthroughClusterIpv6",
    )


def test_mtls_and_detected_http_choose_their_chains() -> None:
    # mTLS from another sidecar: TLS with Istio's ALPN.
    assert route(AUTHZ, "10.244.0.5", 80, transport_protocol="tls", application_protocols=("istio-http/1.1",)) == (
        "0.0.0.0_80",
        "inbound|80||",
    )
    # Plain HTTP detected by http_inspector on an unknown port: the HTTP catch-all.
    assert route(AUTHZ, "10.244.0.5", 9999, application_protocols=("http/1.1",)) == (
        "virtualInbound-catchall-http",
        "InboundPassthroughClusterIpv4",
    )


def test_explanation_for_the_app_port() -> None:
    _c, vi = virtual_inbound(TPROXY)
    sel = select_filter_chain(vi, ConnInfo.of("172.16.188.31", 8083, "10.0.0.1", 5555))
    assert sel.explanation == (
        "destination port 8083: exact match → 5 chains: 0.0.0.0_8083",
        "destination IP 172.16.188.31: most specific prefix /0 → 5 chains: 0.0.0.0_8083",
        "server name (none): chains without server_names → 5 chains: 0.0.0.0_8083",
        "transport protocol raw_buffer: exact transport_protocol raw_buffer → 2 chains: 0.0.0.0_8083",
        "application protocols (none): chains without application_protocols → 1 chain: 0.0.0.0_8083",
        "→ filter chain 0.0.0.0_8083",
    )
