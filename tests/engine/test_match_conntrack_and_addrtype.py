"""conntrack/state matches see NEW for a first packet and ESTABLISHED for replies;
addrtype knows the pod's local addresses."""

import ipaddress

from meshviz.engine.sim.connection import Endpoint, connect_from_network

from .helpers import CLIENT, POD, listener, pod, receive, send, sim, tcp

STATE_RULES = """*mangle
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p tcp -m conntrack --ctstate NEW -j MARK --set-mark 0x1
-A OUTPUT -p tcp -m state --state RELATED,ESTABLISHED -j MARK --set-mark 0x2
COMMIT
"""


def test_first_packet_is_new_and_the_reply_is_established() -> None:
    snap = pod(STATE_RULES, sockets=(listener(80, name="app"),))
    r = connect_from_network(
        sim(snap), Endpoint(ipaddress.ip_address(CLIENT), 40000), Endpoint(ipaddress.ip_address(POD), 80), "eth0"
    )
    assert r.outcome == "connected"
    assert r.syn is not None and r.syn.final_packet is not None and r.syn.final_packet.mark == 0x1
    assert r.synack is not None and r.synack.final_packet is not None and r.synack.final_packet.mark == 0x2


def test_a_syn_ack_without_a_connection_is_invalid() -> None:
    rules = "*mangle\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -m conntrack --ctstate INVALID -j DROP\nCOMMIT\n"
    t = receive(pod(rules), tcp(CLIENT, 40000, POD, 80, flags="SYN,ACK"))
    assert t.disposition.value == "DROPPED"


def test_addrtype_local_covers_the_pod_ip_and_loopback() -> None:
    rules = """*nat
:OUTPUT ACCEPT [0:0]
-A OUTPUT -m addrtype --dst-type LOCAL -j RETURN
-A OUTPUT -p tcp -j REDIRECT --to-ports 15001
COMMIT
"""
    for dst, redirected in ((POD, False), ("127.0.0.5", False), (CLIENT, True)):
        t = send(pod(rules), tcp("0.0.0.0", 0, dst, 80))
        assert t.final_packet is not None
        assert (t.final_packet.dport == 15001) is redirected, dst
