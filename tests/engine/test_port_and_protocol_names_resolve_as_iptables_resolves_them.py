"""Service and protocol names resolve the way iptables resolves them, from one table each.

`-p tcp --dport postgresql` used to parse (the parser's service table knew it) and then make every trace through
it UNSUPPORTED (the match compiler's smaller table did not).  Both now read meshviz.engine.core.names.
"""

import pytest

from meshviz.engine.core.names import SERVICES, canonical_protocol, protocol_number, service_port
from meshviz.engine.core.trace import StepKind

from .helpers import CLIENT, POD, pod, receive, tcp

TEMPLATE = """*mangle
:PREROUTING ACCEPT [0:0]
-A PREROUTING {criteria} -j MARK --set-mark 0x7
COMMIT
"""


@pytest.mark.parametrize(
    ("criteria", "dport", "marked"),
    [
        ("-p tcp -m tcp --dport postgresql", 5432, True),
        ("-p tcp -m tcp --dport postgresql", 5433, False),
        ("-p tcp -m tcp --dport mysql", 3306, True),
        ("-p tcp -m tcp --dport http-alt", 8080, True),
        ("-p tcp -m multiport --dports redis,https", 6379, True),
        ("-p tcp -m multiport --dports redis,https", 443, True),
        ("-p tcp -m multiport --dports redis,https", 80, False),
        ("-p tcp -m tcp --dport ssh:telnet", 23, True),
        ("-p TCP -m tcp --dport postgresql", 5432, True),
        ("-p 6 -m tcp --dport postgresql", 5432, True),
    ],
)
def test_named_ports_match_like_numbers_and_never_become_unsupported(criteria: str, dport: int, marked: bool) -> None:
    snap = pod(TEMPLATE.format(criteria=criteria))
    t = receive(snap, tcp(CLIENT, 40000, POD, dport), "eth0")
    assert not [s for s in t.steps() if s.kind == StepKind.UNSUPPORTED], t.steps()
    assert t.final_packet is not None
    assert (t.final_packet.mark == 0x7) is marked


def test_an_unknown_service_name_is_a_parse_error_naming_it() -> None:
    from meshviz.engine.netfilter.parser import parse_iptables

    r = parse_iptables(TEMPLATE.format(criteria="-p tcp -m tcp --dport no-such-service"), source="rules")
    assert r.errors
    assert "no-such-service" in r.errors[0].message
    assert r.errors[0].line == 3


def test_one_table_answers_for_protocols_in_every_spelling() -> None:
    assert protocol_number("tcp") == protocol_number("TCP") == protocol_number("6") == 6
    assert protocol_number("ipproto-200") == 200
    assert protocol_number("icmpv6") == protocol_number("ipv6-icmp") == 58
    assert canonical_protocol("icmpv6") == "ipv6-icmp"
    assert protocol_number("nonsense") is None
    assert service_port("postgresql") == SERVICES["postgresql"] == 5432
    assert service_port("65536") is None
