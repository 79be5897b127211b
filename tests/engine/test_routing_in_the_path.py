"""Routing inside the packet path: re-route after a mangle OUTPUT mark, loopback
keeping the mark and conntrack entry, martians, route_localnet."""

import ipaddress

from meshviz.engine.core.trace import Disposition, StepKind
from meshviz.engine.sim.connection import Endpoint, connect_from_pod
from meshviz.engine.sim.simulate import Sender

from .helpers import CLIENT, POD, ROUTES, TPROXY_RULES, TPROXY_TABLE, listener, pod, receive, send, sim, tcp

MARK_OUT = """*mangle
:OUTPUT ACCEPT [0:0]
-A OUTPUT -p tcp -d 10.0.0.1 -j MARK --set-mark 1337
COMMIT
"""


def test_mark_set_in_mangle_output_reroutes_through_table_133() -> None:
    snap = pod(MARK_OUT, routes=ROUTES + TPROXY_TABLE, ip_rule=TPROXY_RULES)
    t = send(snap, tcp("0.0.0.0", 0, CLIENT, 80))
    lookups = [s for s in t.steps() if s.kind == StepKind.ROUTING_LOOKUP]
    assert len(lookups) >= 2 and "re-route" in lookups[1].detail
    assert any(s.kind == StepKind.LOOPBACK for s in t.steps())  # table 133: local default dev lo


def test_without_the_policy_rule_the_marked_packet_leaves_eth0() -> None:
    t = send(pod(MARK_OUT), tcp("0.0.0.0", 0, CLIENT, 80))
    assert t.disposition == Disposition.EXITS_INTERFACE and t.interface == "eth0"


def test_loopback_keeps_the_mark_into_prerouting() -> None:
    rules = """*mangle
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A OUTPUT -p tcp -o lo -j MARK --set-mark 0x2a
-A PREROUTING -i lo -m mark --mark 0x2a -j MARK --set-mark 0x2b
COMMIT
"""
    t = send(pod(rules), tcp("0.0.0.0", 0, POD, 8080))
    assert t.final_packet is not None and t.final_packet.mark == 0x2B


def test_loopback_destination_arriving_on_eth0_is_martian_without_route_localnet() -> None:
    rules = "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp -j DNAT --to-destination 127.0.0.1:8080\nCOMMIT\n"
    t = receive(pod(rules), tcp(CLIENT, 40000, POD, 80))
    assert t.disposition == Disposition.DROPPED and "MARTIAN" in t.detail
    t = receive(pod(rules, sysctl="net.ipv4.conf.all.route_localnet = 1"), tcp(CLIENT, 40000, POD, 80))
    assert t.disposition == Disposition.DELIVERED_LOCAL


def test_connect_from_loopback_source_to_outside_fails_with_einval() -> None:
    s = sim(pod("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n"))
    r = connect_from_pod(
        s, Endpoint(ipaddress.ip_address(CLIENT), 80), Sender(), bind=ipaddress.ip_address("127.0.0.6")
    )
    assert (r.outcome, r.errno) == ("error", "EINVAL")


def test_original_src_connection_completes_only_with_mark_connmark_and_policy_route() -> None:
    rules = """*mangle
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p tcp -m mark --mark 1337 -j CONNMARK --save-mark
-A OUTPUT -p tcp -m connmark --mark 1337 -j CONNMARK --restore-mark
COMMIT
"""
    app = listener(8080, name="app", uid=1000, gid=1000)
    envoy = Sender(uid=0, gid=1337, mark=1337, transparent=True, name="envoy-upstream")
    good = pod(rules, routes=ROUTES + TPROXY_TABLE, ip_rule=TPROXY_RULES, sockets=(app,))
    r = connect_from_pod(sim(good), Endpoint(ipaddress.ip_address(POD), 8080), envoy, bind=ipaddress.ip_address(CLIENT))
    assert r.outcome == "connected" and r.peer_seen is not None and str(r.peer_seen.addr) == CLIENT
    bad = pod(rules, sockets=(app,))
    r = connect_from_pod(sim(bad), Endpoint(ipaddress.ip_address(POD), 8080), envoy, bind=ipaddress.ip_address(CLIENT))
    assert r.outcome == "timeout"
    assert r.synack is not None and r.synack.interface == "eth0"
