"""Default rules, interfaces read from routes, and a fresh pod's routing."""

from __future__ import annotations

import ipaddress

from meshviz.engine.core.model import Family
from meshviz.engine.routing.defaults import (
    default_policy_rules,
    default_routing,
    interfaces_from_routes,
    with_default_rules,
)
from meshviz.engine.routing.flow import Flow, render_route, render_rule
from meshviz.engine.routing.ip_route import parse_ip_routes
from meshviz.engine.routing.ip_rule import parse_ip_rules
from meshviz.engine.routing.model import Interface, RouteType
from meshviz.engine.routing.output import route_output
from meshviz.engine.sim.snapshot import Snapshot

A = ipaddress.ip_address


def test_default_policy_rules_per_family() -> None:
    assert [(r.priority, r.table) for r in default_policy_rules(Family.IPV4)] == [(0, 255), (32766, 254), (32767, 253)]
    assert [(r.priority, r.table) for r in default_policy_rules(Family.IPV6)] == [(0, 255), (32766, 254)]


def test_with_default_rules_completes_added_rules() -> None:
    added = parse_ip_rules("ip rule add fwmark 1337 lookup 133\n").rules
    merged = with_default_rules(added)
    v4 = [(r.priority, r.table) for r in merged if r.family == Family.IPV4]
    assert v4 == [(0, 255), (32765, 133), (32766, 254), (32767, 253)]
    listed = parse_ip_rules(
        "0:\tfrom all lookup local\n32766:\tfrom all lookup main\n32767:\tfrom all lookup default\n"
    ).rules
    assert len([r for r in with_default_rules(listed) if r.family == Family.IPV4]) == 3


def test_interfaces_from_routes_reads_addresses_of_the_local_table() -> None:
    routes = parse_ip_routes(
        "default via 10.80.0.1 dev eth0\n10.80.0.0/24 dev eth0 proto kernel scope link src 10.80.0.10\n"
        "local 10.80.0.9 dev eth0 table local proto kernel scope host src 10.80.0.10\n"
        "local 10.80.0.10 dev eth0 table local proto kernel scope host src 10.80.0.10\n"
        "local 127.0.0.0/8 dev lo table local proto kernel scope host src 127.0.0.1\n"
    ).routes
    ifaces = {i.name: i for i in interfaces_from_routes(routes)}
    assert ifaces["lo"].loopback and A("127.0.0.1") in ifaces["lo"].addresses and A("::1") in ifaces["lo"].addresses
    assert ifaces["eth0"].addresses[0] == A("10.80.0.10")  # the connected route's src is the primary
    assert A("10.80.0.9") in ifaces["eth0"].addresses
    assert not ifaces["eth0"].loopback


def test_lo_always_exists() -> None:
    (lo,) = interfaces_from_routes(())
    assert lo.name == "lo" and lo.addresses == (A("127.0.0.1"), A("::1"))


def test_default_routing_of_a_fresh_pod() -> None:
    eth0 = Interface("eth0", (A("10.244.1.5"),))
    cfg = default_routing([eth0], gateway=A("10.244.1.1"), prefixes={A("10.244.1.5"): 24})
    texts = {render_route(r) for r in cfg.routes}
    assert "local 10.244.1.5 dev eth0 table local proto kernel scope host src 10.244.1.5" in texts
    assert "local 127.0.0.0/8 dev lo table local proto kernel scope host src 127.0.0.1" in texts
    assert "10.244.1.0/24 dev eth0 proto kernel scope link src 10.244.1.5" in texts
    assert "broadcast 10.244.1.255 dev eth0 table local proto kernel scope link src 10.244.1.5" in texts
    assert "default via 10.244.1.1 dev eth0" in texts
    snap = Snapshot(routing=cfg, interfaces=interfaces_from_routes(cfg.routes))
    d = route_output(snap, Flow(dst=A("8.8.8.8")))
    assert (d.dev, d.gateway, d.src) == ("eth0", A("10.244.1.1"), A("10.244.1.5"))
    assert route_output(snap, Flow(dst=A("10.244.1.5"))).type == RouteType.LOCAL


def test_default_routing_without_gateway_or_prefix() -> None:
    cfg = default_routing([Interface("eth0", (A("10.0.0.7"),))])
    texts = {render_route(r) for r in cfg.routes}
    assert "default dev eth0 scope link" in texts
    assert not any(r.dst.prefixlen == 24 for r in cfg.routes)


def test_default_routing_calico_style_gateway_outside_any_prefix() -> None:
    cfg = default_routing([Interface("eth0", (A("10.0.0.7"),))], gateway=A("169.254.1.1"))
    texts = {render_route(r) for r in cfg.routes}
    assert "169.254.1.1 dev eth0 scope link" in texts and "default via 169.254.1.1 dev eth0" in texts


def test_render_rule_matches_ip_rule_output() -> None:
    (rule,) = parse_ip_rules("ip rule add fwmark 0x111/0xfff pref 32764 lookup 100").rules
    assert render_rule(rule) == "32764:\tfrom all fwmark 0x111/0xfff lookup 100"
