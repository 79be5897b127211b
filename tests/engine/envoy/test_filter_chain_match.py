"""Envoy's filter chain match: criteria in order, most specific value wins, no fallback once narrowed."""

from __future__ import annotations

import ipaddress

from meshviz.engine.envoy import (
    Address,
    ConnInfo,
    FilterChain,
    FilterChainMatch,
    Listener,
    NetworkFilter,
    select_filter_chain,
)


def chain(name: str, **match: object) -> FilterChain:
    for key in ("prefix_ranges", "direct_source_prefix_ranges", "source_prefix_ranges"):
        if key in match:
            match[key] = tuple(ipaddress.ip_network(n) for n in match[key])  # type: ignore[attr-defined]
    return FilterChain(
        name=name,
        index=0,
        match=FilterChainMatch(**match),  # type: ignore[arg-type]
        filters=(
            NetworkFilter("envoy.filters.network.tcp_proxy", kind="envoy.filters.network.tcp_proxy", cluster=name),
        ),
    )


def listener(*chains: FilterChain, default: FilterChain | None = None) -> Listener:
    return Listener(
        name="l", address=Address("socket", "0.0.0.0", 15006), filter_chains=chains, default_filter_chain=default
    )


def conn(dst: str = "10.0.0.5", port: int = 8080, src: str = "10.0.0.9", **kw: object) -> ConnInfo:
    return ConnInfo.of(dst, port, src, 40000, **kw)  # type: ignore[arg-type]


def pick(lst: Listener, c: ConnInfo) -> str | None:
    sel = select_filter_chain(lst, c)
    return sel.chain.name if sel.chain is not None else None


def test_destination_port_exact_before_any() -> None:
    lst = listener(chain("any"), chain("p8080", destination_port=8080))
    assert pick(lst, conn(port=8080)) == "p8080"
    assert pick(lst, conn(port=9090)) == "any"


def test_no_fallback_to_port_less_chains_once_the_port_matched() -> None:
    """The 8080 chain requires TLS; a plaintext connection to 8080 does not fall back to the catch-all."""
    lst = listener(chain("any"), chain("p8080-tls", destination_port=8080, transport_protocol="tls"))
    sel = select_filter_chain(lst, conn(port=8080))
    assert sel.chain is None
    assert sel.explanation[-1] == "→ connection closed: no matching filter chain (and no default_filter_chain)"
    with_default = listener(
        chain("any"), chain("p8080-tls", destination_port=8080, transport_protocol="tls"), default=chain("fallback")
    )
    sel = select_filter_chain(with_default, conn(port=8080))
    assert sel.chain is not None and sel.chain.name == "fallback" and sel.is_default


def test_destination_ip_most_specific_prefix() -> None:
    lst = listener(
        chain("any"),
        chain("ten", prefix_ranges=["10.0.0.0/8"]),
        chain("pod", prefix_ranges=["10.0.0.5/32", "192.168.0.0/16"]),
    )
    assert pick(lst, conn(dst="10.0.0.5")) == "pod"
    assert pick(lst, conn(dst="10.0.0.6")) == "ten"
    assert pick(lst, conn(dst="172.16.0.1")) == "any"
    v6 = listener(chain("v4only", prefix_ranges=["0.0.0.0/0"]))
    assert pick(v6, conn(dst="fd00::5", src="fd00::9")) is None


def test_server_name_exact_then_wildcards_then_none() -> None:
    lst = listener(
        chain("none"),
        chain("exact", server_names=("www.example.com",)),
        chain("wild", server_names=("*.example.com",)),
        chain("com", server_names=("*.com",)),
    )
    assert pick(lst, conn(sni="www.example.com", transport_protocol="tls")) == "exact"
    assert pick(lst, conn(sni="api.example.com", transport_protocol="tls")) == "wild"
    assert pick(lst, conn(sni="a.b.example.com", transport_protocol="tls")) == "wild"
    assert pick(lst, conn(sni="foo.com", transport_protocol="tls")) == "com"
    assert pick(lst, conn(sni="foo.org", transport_protocol="tls")) == "none"
    assert pick(lst, conn()) == "none"


def test_transport_protocol_exact_then_any() -> None:
    lst = listener(chain("any"), chain("tls", transport_protocol="tls"))
    assert pick(lst, conn(transport_protocol="tls")) == "tls"
    assert pick(lst, conn()) == "any"


def test_application_protocols_in_the_connections_order() -> None:
    lst = listener(
        chain("none"), chain("h2", application_protocols=("h2",)), chain("h1", application_protocols=("http/1.1",))
    )
    assert pick(lst, conn(application_protocols=("http/1.1", "h2"))) == "h1"
    assert pick(lst, conn(application_protocols=("h2", "http/1.1"))) == "h2"
    assert pick(lst, conn(application_protocols=("istio",))) == "none"


def test_direct_source_ip() -> None:
    lst = listener(chain("any"), chain("lb", direct_source_prefix_ranges=["10.1.0.0/16"]))
    assert pick(lst, conn(src="203.0.113.7", direct_src_ip="10.1.2.3")) == "lb"
    assert pick(lst, conn(src="10.1.2.3", direct_src_ip="10.9.9.9")) == "any"


def test_source_type_local_external_any() -> None:
    lst = listener(
        chain("local", source_type="SAME_IP_OR_LOOPBACK"),
        chain("external", source_type="EXTERNAL"),
        chain("any"),
    )
    assert pick(lst, conn(src="127.0.0.1")) == "local"
    assert pick(lst, conn(dst="10.0.0.5", src="10.0.0.5")) == "local"
    assert pick(lst, conn(src="10.0.0.9")) == "external"
    assert pick(lst, conn(src="10.0.0.9", source_is_local=True)) == "local"
    only_local = listener(chain("local", source_type="SAME_IP_OR_LOOPBACK"), chain("any"))
    assert pick(only_local, conn(src="10.0.0.9")) == "any"


def test_source_ip_then_source_port() -> None:
    lst = listener(
        chain("any"),
        chain("net", source_prefix_ranges=["10.0.0.0/24"]),
        chain("host", source_prefix_ranges=["10.0.0.9/32"]),
        chain("host-port", source_prefix_ranges=["10.0.0.9/32"], source_ports=(40000,)),
    )
    assert pick(lst, conn(src="10.0.0.9")) == "host-port"
    assert pick(lst, ConnInfo.of("10.0.0.5", 8080, "10.0.0.9", 1234)) == "host"
    assert pick(lst, conn(src="10.0.0.8")) == "net"
    assert pick(lst, conn(src="10.0.1.1")) == "any"


def test_source_ip_narrowing_does_not_fall_back() -> None:
    lst = listener(chain("net-tls", source_prefix_ranges=["10.0.0.0/24"], source_ports=(1,)), chain("any"))
    assert pick(lst, conn(src="10.0.0.9")) is None  # the /24 won, and its only chain wants port 1


def test_no_chains_and_default() -> None:
    empty = listener(default=chain("dflt"))
    sel = select_filter_chain(empty, conn())
    assert sel.chain is not None and sel.is_default
    assert select_filter_chain(listener(), conn()).chain is None


def test_identical_matches_are_flagged() -> None:
    lst = listener(chain("a"), chain("b"))
    sel = select_filter_chain(lst, conn())
    assert sel.chain is not None and sel.chain.name == "a"
    assert "identical matching rules" in sel.explanation[-2]


def test_filter_chain_matcher_is_not_evaluated() -> None:
    lst = Listener(
        name="m", address=Address("socket", "0.0.0.0", 1), filter_chain_matcher=True, filter_chains=(chain("x"),)
    )
    sel = select_filter_chain(lst, conn())
    assert sel.chain is None and "filter_chain_matcher" in sel.explanation[0]


def test_explanation_walks_the_steps() -> None:
    lst = listener(chain("any"), chain("p8080", destination_port=8080))
    sel = select_filter_chain(lst, conn(port=8080))
    assert sel.explanation[0] == "destination port 8080: exact match → 1 chain: p8080"
    assert sel.explanation[1].startswith("destination IP 10.0.0.5: most specific prefix /0")
    assert sel.explanation[-1] == "→ filter chain p8080"
