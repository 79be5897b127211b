"""`route_output`: ip_route_output_key's checks and source selection."""

from __future__ import annotations

import ipaddress

from meshviz.engine.routing.defaults import interfaces_from_routes
from meshviz.engine.routing.flow import Flow, RouteDecision
from meshviz.engine.routing.ip_route import parse_ip_routes
from meshviz.engine.routing.ip_rule import parse_ip_rules
from meshviz.engine.routing.model import RouteType, RoutingConfig
from meshviz.engine.routing.output import route_output
from meshviz.engine.routing.sysctl import parse_sysctls
from meshviz.engine.sim.snapshot import Snapshot

A = ipaddress.ip_address

RULES = "0:\tfrom all lookup local\n32765:\tfrom all fwmark 0x539 lookup 133\n32766:\tfrom all lookup main\n32767:\tfrom all lookup default\n"
ROUTES = """\
local default dev lo table 133 scope host
default via 10.80.0.1 dev eth0
10.80.0.0/24 dev eth0 proto kernel scope link src 10.80.0.10
10.81.0.0/24 dev eth1 proto kernel scope link src 10.81.0.10
10.62.0.0/16 via 10.80.0.1 dev eth0 src 10.81.0.10
blackhole 10.93.0.0/16
local 10.80.0.10 dev eth0 table local proto kernel scope host src 10.80.0.10
broadcast 10.80.0.255 dev eth0 table local proto kernel scope link src 10.80.0.10
local 10.81.0.10 dev eth1 table local proto kernel scope host src 10.81.0.10
local 127.0.0.0/8 dev lo table local proto kernel scope host src 127.0.0.1
local 127.0.0.1 dev lo table local proto kernel scope host src 127.0.0.1
"""


def pod(sysctl: str = "", routes: str = ROUTES) -> Snapshot:
    rt = parse_ip_routes(routes)
    assert not rt.errors
    return Snapshot(
        routing=RoutingConfig(rules=parse_ip_rules(RULES).rules, routes=rt.routes),
        sysctls=parse_sysctls(sysctl).sysctls,
        interfaces=interfaces_from_routes(rt.routes),
    )


def get(snap: Snapshot, dst: str, **kw: object) -> RouteDecision:
    return route_output(snap, Flow(dst=A(dst), **kw))  # type: ignore[arg-type]


def test_tproxy_mark_delivers_any_destination_locally_via_lo() -> None:
    d = get(pod(), "1.2.3.4", mark=1337)
    assert d.ok and d.type == RouteType.LOCAL and d.dev == "lo" and d.table == 133
    assert d.src == A("1.2.3.4")  # a local route without src: the destination itself


def test_local_destination_is_delivered_via_lo_with_its_own_address() -> None:
    d = get(pod(), "10.80.0.10")
    assert (d.type, d.dev, d.src) == (RouteType.LOCAL, "lo", A("10.80.0.10"))


def test_preferred_source_is_the_devices_address_on_the_gateways_subnet() -> None:
    d = get(pod(), "1.2.3.4")
    assert (d.dev, d.gateway, d.src) == ("eth0", A("10.80.0.1"), A("10.80.0.10"))


def test_preferred_source_is_the_routes_src_when_it_has_one() -> None:
    assert get(pod(), "10.62.1.1").src == A("10.81.0.10")


def test_given_source_is_kept() -> None:
    d = get(pod(), "1.2.3.4", src=A("10.81.0.10"))
    assert d.ok and d.src == A("10.81.0.10") and d.dev == "eth0"


def test_loopback_source_out_of_eth0_is_einval_without_route_localnet() -> None:
    d = get(pod(), "1.2.3.4", src=A("127.0.0.6"))
    assert not d.ok and d.error == "EINVAL"
    assert (
        "source 127.0.0.6 is a loopback address and dev eth0 is not loopback: the kernel refuses this route "
        "unless route_localnet=1 (EINVAL)" in d.explanation
    )


def test_loopback_source_allowed_by_route_localnet_on_the_device_or_all() -> None:
    assert get(pod("net.ipv4.conf.eth0.route_localnet = 1"), "1.2.3.4", src=A("127.0.0.6")).ok
    assert get(pod("net.ipv4.conf.all.route_localnet = 1"), "1.2.3.4", src=A("127.0.0.6")).ok
    assert not get(pod("net.ipv4.conf.eth1.route_localnet = 1"), "1.2.3.4", src=A("127.0.0.6")).ok


def test_loopback_source_to_a_local_destination_is_fine() -> None:
    d = get(pod(), "10.80.0.10", src=A("127.0.0.6"))
    assert d.ok and d.dev == "lo"


def test_non_local_source_is_enetunreach_unless_transparent() -> None:
    d = get(pod(), "1.2.3.4", src=A("10.99.0.1"))
    assert not d.ok and d.error == "ENETUNREACH" and "not a local address" in d.explanation[-1]
    t = get(pod(), "1.2.3.4", src=A("10.99.0.1"), nonlocal_src_ok=True)
    assert t.ok and t.src == A("10.99.0.1")


def test_any_127_address_is_local_through_the_local_table() -> None:
    assert get(pod(), "127.0.0.1", src=A("127.0.0.6")).ok


def test_bound_device_without_route_assumes_the_destination_is_on_link() -> None:
    d = get(pod(), "1.2.3.4", oif="lo")
    assert d.ok and (d.type, d.dev, d.src) == (RouteType.UNICAST, "lo", A("10.80.0.10"))


def test_bound_device_turns_a_blackhole_into_an_on_link_route() -> None:
    assert get(pod(), "10.93.0.1").error == "BLACKHOLE"
    d = get(pod(), "10.93.0.1", oif="eth0")
    assert d.ok and d.dev == "eth0" and d.gateway is None


def test_unknown_bound_device_is_enodev() -> None:
    assert get(pod(), "1.2.3.4", oif="eth9").error == "ENODEV"


def test_subnet_broadcast_goes_out_the_device() -> None:
    d = get(pod(), "10.80.0.255")
    assert (d.type, d.dev, d.src) == (RouteType.BROADCAST, "eth0", A("10.80.0.10"))


def test_source_from_another_device_when_the_output_device_has_none() -> None:
    routes = ROUTES + "10.70.0.0/16 dev eth2 scope link\n"
    d = get(pod(routes=routes), "10.70.0.1")
    assert d.ok and d.dev == "eth2" and d.src == A("10.80.0.10")


def test_zeronet_source_is_einval() -> None:
    assert get(pod(), "1.2.3.4", src=A("0.0.0.1")).error == "EINVAL"


def test_ipv6_output_local_and_connected() -> None:
    routes = parse_ip_routes(
        "$ ip -6 route show table all\nfd00::/64 dev eth0 proto kernel metric 256 pref medium\n"
        "local fd00::5 dev eth0 table local proto kernel metric 0 pref medium\n"
        "local ::1 dev lo table local proto kernel metric 0 pref medium\n"
    ).routes
    snap = Snapshot(routing=RoutingConfig(routes=routes), interfaces=interfaces_from_routes(routes))
    d = route_output(snap, Flow(dst=A("fd00::9")))
    assert (d.dev, d.src) == ("eth0", A("fd00::5"))
    assert route_output(snap, Flow(dst=A("::1"))).type == RouteType.LOCAL
    assert route_output(snap, Flow(dst=A("2001:db8::1"))).error == "ENETUNREACH"
