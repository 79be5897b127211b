"""The upstream socket's source: original_src, else cluster upstream_bind_config, else bootstrap, else the kernel."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from functools import cache
from pathlib import Path

from meshviz.engine.envoy import (
    Address,
    BindConfig,
    Cluster,
    EnvoyConfig,
    FilterChain,
    Listener,
    ListenerFilter,
    NetworkFilter,
    parse_config_dump,
    upstream_binding,
)
from meshviz.engine.envoy.model import SocketOption

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "envoy"
ORIGINAL_SRC = "envoy.filters.listener.original_src"


@cache
def load(name: str) -> EnvoyConfig:
    return parse_config_dump((FIXTURES / name).read_text(), name).config


BIND_127_0_0_6 = BindConfig(source_address=Address("socket", "127.0.0.6", 0))
INBOUND = Cluster("inbound|8080||", "ORIGINAL_DST", upstream_bind_config=BIND_127_0_0_6)
PLAIN = Cluster("outbound|80||x", "EDS")


def listener(*filters: ListenerFilter) -> Listener:
    return Listener("virtualInbound", Address("socket", "0.0.0.0", 15006), listener_filters=filters)


def test_original_src_binds_the_client_address_with_its_mark() -> None:
    b = upstream_binding(
        EnvoyConfig(), listener(ListenerFilter(ORIGINAL_SRC, kind=ORIGINAL_SRC, mark=1337)), INBOUND, "10.1.2.3"
    )
    assert (b.bind_ip, b.bind_port, b.transparent, b.mark, b.via) == (
        ipaddress.ip_address("10.1.2.3"),
        0,
        True,
        1337,
        "original_src",
    )
    assert "overridden" in b.explanation[-1] and "127.0.0.6" in b.explanation[-1]


def test_original_src_without_mark_sets_no_so_mark() -> None:
    b = upstream_binding(EnvoyConfig(), listener(ListenerFilter(ORIGINAL_SRC, kind=ORIGINAL_SRC)), PLAIN, "10.1.2.3")
    assert b.via == "original_src" and b.mark == 0 and b.transparent
    assert "mark unset (0): Envoy sets no SO_MARK" in b.explanation[1]


def test_http_original_src_filter() -> None:
    hcm = NetworkFilter(
        "envoy.filters.network.http_connection_manager",
        kind="envoy.filters.network.http_connection_manager",
        http_original_src_mark=7,
    )
    chain = FilterChain("c", 0, filters=(hcm,))
    b = upstream_binding(EnvoyConfig(), listener(), PLAIN, "10.1.2.3", chain=chain)
    assert b.via == "original_src" and b.mark == 7 and b.bind_ip == ipaddress.ip_address("10.1.2.3")


def test_cluster_bind_config_127_0_0_6() -> None:
    b = upstream_binding(EnvoyConfig(), listener(), INBOUND, "10.1.2.3")
    assert (str(b.bind_ip), b.bind_port, b.transparent, b.mark, b.via) == (
        "127.0.0.6",
        0,
        False,
        0,
        "cluster upstream_bind_config",
    )
    assert "the application sees the connection come from it" in b.explanation[-1]


def test_bind_config_socket_options() -> None:
    bc = BindConfig(
        source_address=Address("socket", "10.0.0.5", 0),
        freebind=True,
        socket_options=(SocketOption(0, 19, 1), SocketOption(1, 36, 42)),
    )
    b = upstream_binding(EnvoyConfig(), None, replace(PLAIN, upstream_bind_config=bc), None)
    assert b.transparent and b.mark == 42 and str(b.bind_ip) == "10.0.0.5"


def test_bootstrap_bind_config_then_none() -> None:
    config = EnvoyConfig(bootstrap_upstream_bind_config=BindConfig(source_address=Address("socket", "10.0.0.5", 0)))
    b = upstream_binding(config, listener(), PLAIN, "10.1.2.3")
    assert b.via == "bootstrap cluster_manager.upstream_bind_config" and str(b.bind_ip) == "10.0.0.5"
    b = upstream_binding(EnvoyConfig(), listener(), PLAIN, "10.1.2.3")
    assert (b.bind_ip, b.via) == (None, "none")
    assert "kernel picks the source address" in b.explanation[0]


def test_geo_inbound_cluster_binds_127_0_0_6() -> None:
    c = load("istio-1.18-sidecar-geo-virtualInbound-error-state.json")
    b = upstream_binding(c, None, c.cluster("inbound|8083||"), "10.244.1.7")
    assert str(b.bind_ip) == "127.0.0.6" and b.via == "cluster upstream_bind_config"


def test_istio_1_3_inbound_cluster_does_not_bind() -> None:
    """Before 1.10 the inbound cluster dials 127.0.0.1 with no bind: the app sees 127.0.0.1."""
    c = load("istio-1.3-sidecar-productpage-bookinfo.json")
    vi = c.listener("virtualInbound")
    b = upstream_binding(c, vi, c.cluster("inbound|9080|http|productpage.default.svc.cluster.local"), "10.244.1.7")
    assert (b.bind_ip, b.via) == (None, "none")


def test_tproxy_fixture_original_src_wins_with_or_without_the_cluster_bind() -> None:
    c = load("tproxy-original-src.json")
    vi = c.listener("virtualInbound")
    inbound = c.cluster("inbound|8083||")
    assert vi is not None and inbound is not None
    for cluster in (inbound, replace(inbound, upstream_bind_config=None)):
        b = upstream_binding(c, vi, cluster, "10.244.1.7")
        assert (str(b.bind_ip), b.bind_port, b.transparent, b.mark, b.via) == (
            "10.244.1.7",
            0,
            True,
            1337,
            "original_src",
        )
