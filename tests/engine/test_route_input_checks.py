"""`route_input`: ip_route_input_slow's martian, forwarding and reverse-path checks."""

from __future__ import annotations

import ipaddress

from meshviz.engine.routing.defaults import interfaces_from_routes
from meshviz.engine.routing.flow import Flow, RouteDecision
from meshviz.engine.routing.input import route_input
from meshviz.engine.routing.ip_route import parse_ip_routes
from meshviz.engine.routing.ip_rule import parse_ip_rules
from meshviz.engine.routing.model import RouteType, RoutingConfig
from meshviz.engine.routing.sysctl import parse_sysctls
from meshviz.engine.sim.snapshot import Snapshot

A = ipaddress.ip_address

DEFAULT_RULES = "0:\tfrom all lookup local\n32766:\tfrom all lookup main\n32767:\tfrom all lookup default\n"
ISTIO_RULES = DEFAULT_RULES + "32765:\tfrom all fwmark 0x539 lookup 133\n200:\tfrom all fwmark 0x100/0xf00 lookup 134\n"
ROUTES = """\
default via 10.80.0.1 dev eth0
10.80.0.0/24 dev eth0 proto kernel scope link src 10.80.0.10
10.81.0.0/24 dev eth1 proto kernel scope link src 10.81.0.10
unreachable 10.91.0.0/16
blackhole 10.93.0.0/16
local 10.80.0.10 dev eth0 table local proto kernel scope host src 10.80.0.10
broadcast 10.80.0.255 dev eth0 table local proto kernel scope link src 10.80.0.10
local 10.81.0.10 dev eth1 table local proto kernel scope host src 10.81.0.10
local 127.0.0.0/8 dev lo table local proto kernel scope host src 127.0.0.1
local 127.0.0.1 dev lo table local proto kernel scope host src 127.0.0.1
"""
ISTIO_ROUTES = ROUTES + "local default dev lo table 133 scope host\ndefault via 10.81.0.1 dev eth1 table 134\n"


def pod(sysctl: str = "", *, rules: str = DEFAULT_RULES, routes: str = ROUTES) -> Snapshot:
    rt = parse_ip_routes(routes)
    rr = parse_ip_rules(rules)
    ss = parse_sysctls(sysctl)
    assert not rt.errors and not rr.errors and not ss.errors
    return Snapshot(
        routing=RoutingConfig(rules=rr.rules, routes=rt.routes),
        sysctls=ss.sysctls,
        interfaces=interfaces_from_routes(rt.routes),
    )


def recv(snap: Snapshot, dst: str, src: str | None = "10.80.0.20", iif: str = "eth0", **kw: object) -> RouteDecision:
    return route_input(snap, Flow(dst=A(dst), src=A(src) if src else None, iif=iif, **kw))  # type: ignore[arg-type]


def test_packet_to_the_pod_ip_is_delivered_locally() -> None:
    d = recv(pod(), "10.80.0.10")
    assert d.ok and (d.type, d.dev, d.table) == (RouteType.LOCAL, "lo", 255)


def test_tproxy_marked_packet_to_any_address_is_local() -> None:
    d = recv(pod(rules=ISTIO_RULES, routes=ISTIO_ROUTES), "1.2.3.4", mark=1337)
    assert d.ok and d.type == RouteType.LOCAL and d.table == 133


def test_not_local_with_forwarding_disabled_is_dropped_as_ehostunreach() -> None:
    d = recv(pod(), "1.2.3.4")
    assert not d.ok and d.error == "FORWARDING_DISABLED" and d.errno == "EHOSTUNREACH"
    assert "forwarding is disabled" in d.explanation[-1]


def test_forwarding_enabled_forwards_via_the_gateway() -> None:
    d = recv(pod("net.ipv4.ip_forward = 1"), "1.2.3.4")
    assert d.ok and (d.type, d.dev, d.gateway) == (RouteType.UNICAST, "eth0", A("10.80.0.1"))


def test_forwarding_is_the_receiving_devices_own_flag() -> None:
    snap = pod("net.ipv4.ip_forward = 1\nnet.ipv4.conf.eth0.forwarding = 0")
    assert recv(snap, "1.2.3.4").error == "FORWARDING_DISABLED"
    assert recv(snap, "1.2.3.4", src="10.81.0.20", iif="eth1").ok


def test_lookup_errors_replace_by_ehostunreach_when_not_forwarding() -> None:
    assert recv(pod(), "10.93.0.1").error == "FORWARDING_DISABLED"
    assert recv(pod("net.ipv4.ip_forward = 1"), "10.93.0.1").error == "BLACKHOLE"
    assert recv(pod("net.ipv4.ip_forward = 1"), "10.91.0.1").error == "EHOSTUNREACH"


def test_loopback_destination_on_eth0_is_martian_unless_route_localnet() -> None:
    d = recv(pod(), "127.0.0.1")
    assert d.error == "MARTIAN_DESTINATION" and d.errno == "EINVAL"
    ok = recv(pod("net.ipv4.conf.eth0.route_localnet = 1"), "127.0.0.1")
    assert ok.ok and ok.type == RouteType.LOCAL


def test_loopback_source_on_eth0_is_martian_unless_route_localnet() -> None:
    assert recv(pod(), "10.80.0.10", src="127.0.0.6").error == "MARTIAN_SOURCE"


def test_route_localnet_loopback_source_then_depends_on_the_source_check() -> None:
    # Checked on Linux 6.18: with only the default rules the kernel merely asks
    # whether the source is an interface address (127.0.0.1 is, 127.0.0.6 is
    # not); with custom rules it does the reverse lookup, which finds the
    # `local 127.0.0.0/8` route and refuses both.
    rl = "net.ipv4.conf.all.route_localnet = 1"
    assert recv(pod(rl), "10.80.0.10", src="127.0.0.6").ok
    assert recv(pod(rl), "10.80.0.10", src="127.0.0.1").error == "MARTIAN_SOURCE"
    istio = pod(rl, rules=ISTIO_RULES, routes=ISTIO_ROUTES)
    assert recv(istio, "10.80.0.10", src="127.0.0.6").error == "MARTIAN_SOURCE"


def test_zeronet_multicast_and_broadcast_sources_are_martian() -> None:
    assert recv(pod(), "10.80.0.10", src=None).error == "MARTIAN_SOURCE"
    assert recv(pod(), "10.80.0.10", src="224.0.0.5").error == "MARTIAN_SOURCE"
    assert recv(pod(), "10.80.0.10", src="255.255.255.255").error == "MARTIAN_SOURCE"


def test_zeronet_destination_is_martian() -> None:
    assert recv(pod(), "0.1.2.3").error == "MARTIAN_DESTINATION"


def test_own_address_as_source_is_martian_without_accept_local() -> None:
    assert recv(pod(), "10.80.0.10", src="10.81.0.10").error == "MARTIAN_SOURCE"
    # with custom rules the kernel does the full reverse lookup: same answer
    assert recv(pod(rules=ISTIO_RULES, routes=ISTIO_ROUTES), "10.80.0.10", src="10.81.0.10").error == "MARTIAN_SOURCE"
    assert recv(pod("net.ipv4.conf.eth0.accept_local = 1"), "10.80.0.10", src="10.81.0.10").ok


def test_strict_rp_filter_drops_a_source_routed_via_another_device() -> None:
    d = recv(pod("net.ipv4.conf.all.rp_filter = 1"), "10.80.0.10", iif="eth1")
    assert d.error == "RP_FILTER" and d.errno == "EINVAL"
    assert "strict" in d.explanation[-1]
    assert recv(pod("net.ipv4.conf.all.rp_filter = 1"), "10.80.0.10").ok


def test_rp_filter_is_the_maximum_of_all_and_the_device() -> None:
    assert recv(pod("net.ipv4.conf.eth1.rp_filter = 1"), "10.80.0.10", iif="eth1").error == "RP_FILTER"
    assert recv(pod("net.ipv4.conf.all.rp_filter = 2\nnet.ipv4.conf.eth1.rp_filter = 1"), "10.80.0.10", iif="eth1").ok


def test_loose_rp_filter_accepts_another_device_but_not_an_unroutable_source() -> None:
    snap = pod("net.ipv4.conf.all.rp_filter = 2")
    assert recv(snap, "10.80.0.10", iif="eth1").ok
    assert recv(snap, "10.80.0.10", src="10.91.0.1").error == "RP_FILTER"


def test_rp_filter_uses_the_mark_only_with_src_valid_mark() -> None:
    base = "net.ipv4.conf.eth1.rp_filter = 1\n"
    istio = pod(base, rules=ISTIO_RULES, routes=ISTIO_ROUTES)
    no_mark = recv(istio, "10.80.0.10", src="10.99.0.5", iif="eth1", mark=0x1100)
    assert no_mark.error == "RP_FILTER" and "src_valid_mark=0" in no_mark.explanation[-1]
    valid = pod(base + "net.ipv4.conf.eth1.src_valid_mark = 1", rules=ISTIO_RULES, routes=ISTIO_ROUTES)
    with_mark = recv(valid, "10.80.0.10", src="10.99.0.5", iif="eth1", mark=0x1100)
    assert with_mark.ok


def test_subnet_broadcast_is_delivered_locally() -> None:
    d = recv(pod(), "10.80.0.255")
    assert d.ok and d.type == RouteType.BROADCAST and d.local


def test_input_lookup_needs_a_known_device() -> None:
    assert route_input(pod(), Flow(dst=A("10.80.0.10"), src=A("10.80.0.20"))).error == "EINVAL"
    assert recv(pod(), "10.80.0.10", iif="eth7").error == "ENODEV"


def test_ipv6_input_local_and_martian_loopback() -> None:
    routes = parse_ip_routes(
        "$ ip -6 route show table all\nfd00::/64 dev eth0 proto kernel metric 256 pref medium\n"
        "local fd00::5 dev eth0 table local proto kernel metric 0 pref medium\n"
        "local ::1 dev lo table local proto kernel metric 0 pref medium\n"
    ).routes
    snap = Snapshot(routing=RoutingConfig(routes=routes), interfaces=interfaces_from_routes(routes))
    assert route_input(snap, Flow(dst=A("fd00::5"), src=A("fd00::9"), iif="eth0")).type == RouteType.LOCAL
    assert route_input(snap, Flow(dst=A("::1"), src=A("fd00::9"), iif="eth0")).error == "MARTIAN_DESTINATION"
    assert route_input(snap, Flow(dst=A("fd00::7"), src=A("fd00::9"), iif="eth0")).error == "FORWARDING_DISABLED"
