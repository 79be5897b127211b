"""`-m owner` follows xt_owner: it only sees the sending socket's uid/gid, and a
packet with no socket matches exactly when every criterion is negated."""

from meshviz.engine.core.trace import Disposition

from .helpers import pod, receive, send, tcp

RULES = """*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A OUTPUT -p tcp -m owner --uid-owner 1337 -j RETURN
-A OUTPUT -p tcp -m owner --gid-owner 1337 -j RETURN
-A OUTPUT -p tcp -j REDIRECT --to-ports 15001
COMMIT
"""


def test_process_with_proxy_uid_bypasses_redirect() -> None:
    t = send(pod(RULES), tcp("0.0.0.0", 0, "10.9.9.9", 80), uid=1337, gid=1000)
    assert t.disposition == Disposition.EXITS_INTERFACE
    assert t.final_packet is not None and t.final_packet.dport == 80


def test_process_with_proxy_gid_only_bypasses_redirect() -> None:
    t = send(pod(RULES), tcp("0.0.0.0", 0, "10.9.9.9", 80), uid=1000, gid=1337)
    assert t.disposition == Disposition.EXITS_INTERFACE


def test_other_process_is_redirected_to_15001() -> None:
    t = send(pod(RULES), tcp("0.0.0.0", 0, "10.9.9.9", 80), uid=1000, gid=1000)
    assert t.final_packet is not None
    assert (str(t.final_packet.dst), t.final_packet.dport) == ("127.0.0.1", 15001)


def test_negated_owner_matches_packets_without_a_socket() -> None:
    # A forwarded packet has no local socket: `! --uid-owner 1337` matches it and
    # `--uid-owner 1337` does not (xt_owner: match ^ invert == 0).
    rules = """*mangle
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -m owner ! --uid-owner 1337 -j MARK --set-mark 0x1
-A POSTROUTING -m owner --uid-owner 1337 -j MARK --set-mark 0x2
COMMIT
"""
    t = receive(pod(rules, sysctl="net.ipv4.ip_forward = 1"), tcp("10.0.0.1", 40000, "10.0.0.20", 80))
    assert t.disposition == Disposition.FORWARDED
    assert t.final_packet is not None and t.final_packet.mark == 0x1


def test_uid_range_matches_inclusive_bounds() -> None:
    rules = RULES.replace("--uid-owner 1337 -j RETURN", "--uid-owner 1000-1999 -j RETURN")
    for uid, bypass in ((999, False), (1000, True), (1999, True), (2000, False)):
        t = send(pod(rules), tcp("0.0.0.0", 0, "10.9.9.9", 80), uid=uid, gid=5)
        assert (t.disposition == Disposition.EXITS_INTERFACE) is bypass, uid
