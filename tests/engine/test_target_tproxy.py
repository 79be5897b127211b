"""TPROXY assigns the packet to a transparent socket and sets the mark; with no
such socket (or a non-transparent one) the kernel drops the packet."""

from meshviz.engine.core.trace import Disposition, StepKind

from .helpers import CLIENT, POD, listener, pod, receive, tcp

RULES = """*mangle
:PREROUTING ACCEPT [0:0]
-A PREROUTING -p tcp ! -d 127.0.0.1/32 -j TPROXY --on-port 15006 --tproxy-mark 1337/0xffffffff
COMMIT
"""


def test_tproxy_delivers_to_the_transparent_listener_with_the_original_destination() -> None:
    snap = pod(RULES, sockets=(listener(15006, transparent=True, name="envoy"), listener(80, name="app")))
    t = receive(snap, tcp(CLIENT, 40000, POD, 80))
    assert t.disposition == Disposition.ACCEPTED_TO_SOCKET
    assert t.socket is not None and t.socket.startswith("envoy")
    assert t.final_packet is not None
    assert t.final_packet.dport == 80  # TPROXY does not rewrite the destination
    assert t.final_packet.mark == 1337


def test_tproxy_without_a_listener_drops() -> None:
    t = receive(pod(RULES, sockets=(listener(80, name="app"),)), tcp(CLIENT, 40000, POD, 80))
    assert t.disposition == Disposition.DROPPED
    assert "no socket listens" in t.detail


def test_tproxy_to_a_non_transparent_listener_drops() -> None:
    t = receive(pod(RULES, sockets=(listener(15006, name="envoy"),)), tcp(CLIENT, 40000, POD, 80))
    assert t.disposition == Disposition.DROPPED
    assert "not transparent" in t.detail


def test_tproxy_without_a_socket_table_states_its_assumption() -> None:
    t = receive(pod(RULES), tcp(CLIENT, 40000, POD, 80))
    assert t.disposition == Disposition.ACCEPTED_TO_SOCKET
    assert any("transparent" in a for a in t.assumptions)
    assert any(s.kind == StepKind.ASSUMPTION for s in t.steps())


def test_tproxy_to_a_non_local_destination_needs_the_policy_route() -> None:
    from .helpers import ROUTES, TPROXY_RULES, TPROXY_TABLE

    snap = pod(RULES, sockets=(listener(15006, transparent=True, name="envoy"),))
    t = receive(snap, tcp(CLIENT, 40000, "10.99.0.1", 80))
    assert t.disposition == Disposition.NO_ROUTE  # not local, ip_forward=0
    snap = pod(
        RULES,
        routes=ROUTES + TPROXY_TABLE,
        ip_rule=TPROXY_RULES,
        sockets=(listener(15006, transparent=True, name="envoy"),),
    )
    t = receive(snap, tcp(CLIENT, 40000, "10.99.0.1", 80))
    assert t.disposition == Disposition.ACCEPTED_TO_SOCKET
