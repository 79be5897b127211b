"""tls_inspector / http_inspector: what Envoy learns from the first bytes, unless disabled for the port."""

from __future__ import annotations

from pathlib import Path

from meshviz.engine.envoy import ConnInfo, Listener, inspect_connection, parse_config_dump, select_filter_chain

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "envoy"


def virtual_inbound() -> Listener:
    c = parse_config_dump((FIXTURES / "istio-sidecar-listeners-only-authz-testdata.json").read_text()).config
    vi = c.listener("virtualInbound")
    assert vi is not None
    return vi


def test_http_inspector_detects_plain_http() -> None:
    vi = virtual_inbound()
    out = inspect_connection(vi, ConnInfo.of("10.244.0.5", 9999, "10.244.0.9"), http="http/1.1")
    assert out.conn.application_protocols == ("http/1.1",) and out.conn.transport_protocol == "raw_buffer"
    chain = select_filter_chain(vi, out.conn).chain
    assert chain is not None and chain.label == "virtualInbound-catchall-http"


def test_inspectors_disabled_for_their_ports() -> None:
    vi = virtual_inbound()
    # Istio disables http_inspector on port 80 (the port's protocol is known) and both on 15006.
    out = inspect_connection(vi, ConnInfo.of("10.244.0.5", 80, "10.244.0.9"), http="http/1.1")
    assert out.conn.application_protocols == () and "disabled for this port" in out.explanation[0]
    out = inspect_connection(vi, ConnInfo.of("10.244.0.5", 15006, "10.244.0.9"), tls_client_hello=("x", ("h2",)))
    assert out.conn.transport_protocol == "raw_buffer"


def test_tls_inspector_sets_sni_and_alpn() -> None:
    vi = virtual_inbound()
    hello = ("outbound_.80_._.app.ns.svc.cluster.local", ("istio-http/1.1", "istio"))
    out = inspect_connection(vi, ConnInfo.of("10.244.0.5", 80, "10.244.0.9"), tls_client_hello=hello)
    assert out.conn.transport_protocol == "tls" and out.conn.sni == hello[0]
    chain = select_filter_chain(vi, out.conn).chain
    assert chain is not None and chain.label == "0.0.0.0_80" and chain.transport_socket == "tls"
