"""REDIRECT, DNAT, SNAT and MASQUERADE bind a connection on its first packet
only; later packets and replies are rewritten by conntrack."""

import ipaddress

from meshviz.engine.core.trace import Disposition, StepKind
from meshviz.engine.sim.connection import Endpoint, connect_from_network

from .helpers import CLIENT, POD, listener, pod, receive, send, sim, tcp

REDIRECT = """*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p tcp -j REDIRECT --to-ports 15006
-A OUTPUT -p tcp -d 10.9.0.0/16 -j REDIRECT --to-ports 15001
COMMIT
"""


def test_redirect_in_prerouting_uses_the_incoming_interface_address() -> None:
    t = receive(pod(REDIRECT), tcp(CLIENT, 40000, POD, 80))
    assert t.final_packet is not None
    assert (str(t.final_packet.dst), t.final_packet.dport) == (POD, 15006)


def test_redirect_in_output_goes_to_127_0_0_1() -> None:
    t = send(pod(REDIRECT), tcp("0.0.0.0", 0, "10.9.1.1", 80))
    assert t.final_packet is not None
    assert (str(t.final_packet.dst), t.final_packet.dport) == ("127.0.0.1", 15001)
    assert any(s.kind == StepKind.LOOPBACK for s in t.steps())


def test_redirect_reply_is_rewritten_back_to_the_original_port() -> None:
    snap = pod(REDIRECT, sockets=(listener(15006, name="envoy"),))
    s = sim(snap)
    r = connect_from_network(
        s, Endpoint(ipaddress.ip_address(CLIENT), 40000), Endpoint(ipaddress.ip_address(POD), 80), "eth0"
    )
    assert r.outcome == "connected"
    assert r.synack is not None and r.synack.final_packet is not None
    assert r.synack.final_packet.sport == 80  # the client sees its own destination port


def test_nat_rules_are_only_consulted_for_the_first_packet() -> None:
    snap = pod(REDIRECT, sockets=(listener(15006, name="envoy"),))
    s = sim(snap)
    s.receive(tcp(CLIENT, 40000, POD, 80), "eth0")
    t = s.receive(tcp(CLIENT, 40000, POD, 80, flags="ACK"), "eth0")
    assert not [h for h in t.rules_hit() if h.table == "nat"]
    assert t.final_packet is not None and t.final_packet.dport == 15006  # rewritten by conntrack


def test_dnat_to_another_host_is_forwarded_only_with_ip_forward() -> None:
    rules = """*nat
:PREROUTING ACCEPT [0:0]
-A PREROUTING -p tcp --dport 80 -j DNAT --to-destination 10.0.0.20:8080
COMMIT
"""
    t = receive(pod(rules), tcp(CLIENT, 40000, POD, 80))
    assert t.disposition == Disposition.NO_ROUTE
    t = receive(pod(rules, sysctl="net.ipv4.ip_forward = 1"), tcp(CLIENT, 40000, POD, 80))
    assert t.disposition == Disposition.FORWARDED
    assert t.final_packet is not None and str(t.final_packet.dst) == "10.0.0.20"


def test_masquerade_uses_the_outgoing_interface_address() -> None:
    rules = """*nat
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o eth0 -j MASQUERADE
COMMIT
"""
    t = send(pod(rules), tcp("127.0.0.1", 5000, "10.0.0.1", 80))
    # a loopback source cannot leave eth0 (route_localnet=0): connect() fails before any rule
    assert t.disposition == Disposition.NO_ROUTE
    t = send(pod(rules, sysctl="net.ipv4.conf.all.route_localnet = 1"), tcp("127.0.0.1", 5000, "10.0.0.1", 80))
    assert t.final_packet is not None and str(t.final_packet.src) == POD


def test_snat_in_postrouting_changes_the_source() -> None:
    rules = """*nat
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -p tcp -d 10.0.0.1 -j SNAT --to-source 10.0.0.10:7777
COMMIT
"""
    t = send(pod(rules), tcp("0.0.0.0", 0, "10.0.0.1", 80))
    assert t.final_packet is not None
    assert (str(t.final_packet.src), t.final_packet.sport) == (POD, 7777)
