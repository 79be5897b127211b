"""`-m socket` (xt_socket) ignores wildcard listeners unless --nowildcard, and
with --transparent needs an IP_TRANSPARENT socket."""

from meshviz.engine.core.model import Socket
from meshviz.engine.core.netaddr import parse_ip

from .helpers import CLIENT, POD, listener, pod, receive, tcp

RULES = """*mangle
:PREROUTING ACCEPT [0:0]
-A PREROUTING -p tcp -m socket{opts} -j MARK --set-mark 1
COMMIT
"""


def marked(opts: str, sockets: tuple[Socket, ...]) -> bool:
    t = receive(pod(RULES.format(opts=opts), sockets=sockets), tcp(CLIENT, 40000, POD, 80, flags="ACK"))
    assert t.final_packet is not None
    return t.final_packet.mark == 1


def established(transparent: bool) -> Socket:
    return Socket(
        protocol="tcp",
        local_port=80,
        local_addr=parse_ip(POD),
        remote_addr=parse_ip(CLIENT),
        remote_port=40000,
        transparent=transparent,
        name="conn",
    )


def test_wildcard_listener_is_ignored_by_default() -> None:
    assert not marked("", (listener(80),))


def test_wildcard_listener_matches_with_nowildcard() -> None:
    assert marked(" --nowildcard", (listener(80),))


def test_established_socket_matches() -> None:
    assert marked("", (established(False),))


def test_transparent_option_needs_ip_transparent() -> None:
    assert not marked(" --transparent", (established(False),))
    assert marked(" --transparent", (established(True),))
