"""Built-in criteria and port matches: -p/-s/-d/-i/-o (with `+`), ranges, multiport, tcp flags."""

import pytest

from .helpers import CLIENT, POD, pod, receive, send, tcp

TEMPLATE = """*mangle
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A {chain} {criteria} -j MARK --set-mark 0x7
COMMIT
"""


def hit(
    criteria: str, packet_kw: dict[str, object] | None = None, *, chain: str = "PREROUTING", iface: str = "eth0"
) -> bool:
    kw: dict[str, object] = {"src": CLIENT, "sport": 40000, "dst": POD, "dport": 80, "flags": "SYN"}
    kw.update(packet_kw or {})
    p = tcp(str(kw["src"]), int(str(kw["sport"])), str(kw["dst"]), int(str(kw["dport"])), flags=str(kw["flags"]))
    snap = pod(TEMPLATE.format(chain=chain, criteria=criteria))
    t = send(snap, p) if chain == "OUTPUT" else receive(snap, p, iface)
    assert t.final_packet is not None
    return t.final_packet.mark == 0x7


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ("-p tcp", True),
        ("-p udp", False),
        ("! -p udp", True),
        ("-s 10.0.0.0/24", True),
        ("! -s 10.0.0.0/24", False),
        ("-s 10.0.0.2/32", False),
        ("-d 10.0.0.10/32", True),
        ("-d 192.168.0.0/16", False),
        ("-i eth0", True),
        ("-i eth+", True),
        ("-i et+", True),
        ("-i eth1", False),
        ("! -i lo", True),
    ],
)
def test_builtin_criteria(criteria: str, expected: bool) -> None:
    assert hit(criteria) is expected


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ("-p tcp --dport 80", True),
        ("-p tcp --dport 81", False),
        ("-p tcp --dport 1:1024", True),
        ("-p tcp --dport 81:", False),
        ("-p tcp ! --dport 80", False),
        ("-p tcp --sport 40000", True),
        ("-p tcp -m tcp --dport 79:81", True),
        ("-p udp --dport 80", False),
        ("-p tcp -m multiport --dports 53,80,443", True),
        ("-p tcp -m multiport ! --dports 53,15008", True),
        ("-p tcp -m multiport --dports 1000:2000,22", False),
        ("-p tcp -m multiport --ports 40000", True),
    ],
)
def test_ports_and_multiport(criteria: str, expected: bool) -> None:
    assert hit(criteria) is expected


@pytest.mark.parametrize(
    ("flags", "criteria", "expected"),
    [
        ("SYN", "-p tcp --syn", True),
        ("SYN,ACK", "-p tcp --syn", False),
        ("ACK", "-p tcp ! --syn", True),
        ("SYN,ACK", "-p tcp --tcp-flags SYN,ACK SYN,ACK", True),
        ("SYN", "-p tcp --tcp-flags SYN,RST SYN", True),
        ("RST", "-p tcp --tcp-flags SYN,RST SYN", False),
    ],
)
def test_tcp_flags(flags: str, criteria: str, expected: bool) -> None:
    assert hit(criteria, {"flags": flags}) is expected


def test_out_interface_is_the_routed_device_in_output() -> None:
    assert hit("-o eth0", {"src": "0.0.0.0", "dst": CLIENT}, chain="OUTPUT")
    assert hit("-o lo", {"src": "0.0.0.0", "dst": POD}, chain="OUTPUT")  # own IP routes via lo
    assert not hit("-o lo", {"src": "0.0.0.0", "dst": CLIENT}, chain="OUTPUT")
