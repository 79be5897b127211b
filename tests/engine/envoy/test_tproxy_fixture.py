"""The derived TPROXY dump: transparent virtual listeners, original_src (mark 1337), the whole inbound story."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from meshviz.engine.envoy import (
    ConnInfo,
    EnvoyConfig,
    cluster_for,
    listener_for,
    parse_config_dump,
    select_filter_chain,
    upstream_binding,
    upstream_target,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "envoy"


@cache
def load() -> EnvoyConfig:
    result = parse_config_dump((FIXTURES / "tproxy-original-src.json").read_text(), "tproxy-original-src.json")
    assert result.errors == ()
    return result.config


def test_interception_mode_and_listeners() -> None:
    c = load()
    assert c.interception_mode == "TPROXY"
    names = {x.name for x in c.listeners}
    assert {"virtualInbound", "virtualOutbound", "10.68.227.119_27017", "10.68.144.213_8500"} <= names
    vi = c.listener("virtualInbound")
    vo = c.listener("virtualOutbound")
    assert vi is not None and vo is not None
    assert vi.transparent is True and vo.transparent is True
    assert [f.kind for f in vi.listener_filters] == [
        "envoy.filters.listener.original_dst",
        "envoy.filters.listener.original_src",
        "envoy.filters.listener.tls_inspector",
        "envoy.filters.listener.http_inspector",
    ]
    assert vi.listener_filters[1].mark == 1337
    # The listener Envoy rejected in the source dump loads here (the Lua filter is gone).
    hcm = vi.filter_chains[6].filter_of_kind("envoy.filters.network.http_connection_manager")
    assert hcm is not None and "envoy.filters.http.lua" not in hcm.http_filters


def test_inbound_connection_keeps_the_client_address() -> None:
    """Client 10.244.1.7 → pod 172.16.188.31:8083, TPROXY'd to 15006 without NAT."""
    c = load()
    vi = listener_for(c, "172.16.188.31", 15006)
    assert vi is not None and vi.name == "virtualInbound"
    chain = select_filter_chain(vi, ConnInfo.of("172.16.188.31", 8083, "10.244.1.7", 43210)).chain
    assert chain is not None and chain.label == "0.0.0.0_8083"
    cs = cluster_for(chain, config=c)
    assert cs.cluster is not None and cs.cluster.name == "inbound|8083||"
    target = upstream_target(cs.cluster, ("172.16.188.31", 8083))
    assert (str(target.ip), target.port) == ("172.16.188.31", 8083)
    bind = upstream_binding(c, vi, cs.cluster, "10.244.1.7", chain=chain)
    assert (str(bind.bind_ip), bind.bind_port, bind.transparent, bind.mark) == ("10.244.1.7", 0, True, 1337)


def test_outbound_listeners_are_unchanged() -> None:
    c = load()
    mongo = c.listener("10.68.227.119_27017")
    assert mongo is not None and not mongo.bind_to_port and mongo.transparent is None
    cluster = c.cluster("outbound|27017||mongodb-geo.hr2.svc.cluster.local")
    assert cluster is not None and cluster.endpoints_source == "eds" and cluster.endpoints
