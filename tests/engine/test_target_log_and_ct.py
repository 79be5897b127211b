"""LOG/NFLOG/TRACE continue; CT --zone separates connections; NOTRACK skips conntrack and nat."""

from meshviz.engine.core.trace import StepAction

from .helpers import CLIENT, POD, pod, receive, tcp


def test_log_targets_do_not_terminate() -> None:
    rules = """*mangle
:PREROUTING ACCEPT [0:0]
-A PREROUTING -p tcp -j LOG --log-prefix "in: "
-A PREROUTING -p tcp -j NFLOG --nflog-group 1
-A PREROUTING -p tcp -j MARK --set-mark 0x3
COMMIT
"""
    t = receive(pod(rules), tcp(CLIENT, 40000, POD, 80))
    assert t.final_packet is not None and t.final_packet.mark == 0x3
    assert [s.action for s in t.rules_hit()][:2] == [StepAction.CONTINUE, StepAction.CONTINUE]


def test_notrack_skips_nat() -> None:
    rules = """*raw
:PREROUTING ACCEPT [0:0]
-A PREROUTING -p tcp --dport 80 -j CT --notrack
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
-A PREROUTING -p tcp -j REDIRECT --to-ports 15006
COMMIT
"""
    t = receive(pod(rules), tcp(CLIENT, 40000, POD, 80))
    assert t.final_packet is not None
    assert t.final_packet.dport == 80 and t.final_packet.ctstate is not None
    assert t.final_packet.ctstate.value == "UNTRACKED"


def test_ct_zone_is_recorded() -> None:
    rules = "*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p udp -j CT --zone 1\nCOMMIT\n"
    from meshviz.engine.core.model import Packet
    from meshviz.engine.core.netaddr import parse_ip

    t = receive(
        pod(rules),
        Packet(src=parse_ip(CLIENT), dst=parse_ip(POD), protocol="udp", sport=5353, dport=53, tcp_flags=frozenset()),
    )
    assert any("zone 1" in s.detail for s in t.steps())
