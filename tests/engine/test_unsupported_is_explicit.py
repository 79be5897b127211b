"""What the simulator cannot model becomes a named UNSUPPORTED step, never a skip."""

from meshviz.engine.core.trace import Disposition, StepAction, StepKind

from .helpers import CLIENT, POD, pod, receive, tcp


def test_set_match_reached_stops_with_unsupported_citing_the_rule() -> None:
    rules = """*filter
:INPUT ACCEPT [0:0]
-A INPUT -p tcp -m set --match-set blocked src -j DROP
COMMIT
"""
    t = receive(pod(rules), tcp(CLIENT, 40000, POD, 80))
    assert t.disposition == Disposition.UNSUPPORTED
    (step,) = [s for s in t.steps() if s.action == StepAction.UNSUPPORTED]
    assert (step.table, step.chain, step.index) == ("filter", "INPUT", 1)
    assert "ipset" in step.detail


def test_unmodelled_match_is_irrelevant_when_cheaper_criteria_fail() -> None:
    rules = """*filter
:INPUT ACCEPT [0:0]
-A INPUT -p udp -m set --match-set blocked src -j DROP
COMMIT
"""
    t = receive(pod(rules), tcp(CLIENT, 40000, POD, 80))
    assert t.disposition == Disposition.DELIVERED_LOCAL


def test_queue_target_is_unsupported() -> None:
    rules = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -j NFQUEUE --queue-num 1\nCOMMIT\n"
    t = receive(pod(rules), tcp(CLIENT, 40000, POD, 80))
    assert t.disposition == Disposition.UNSUPPORTED
    assert "NFQUEUE" in t.detail


def test_tcpmss_is_reported_but_does_not_stop_the_trace() -> None:
    rules = (
        "*mangle\n:PREROUTING ACCEPT [0:0]\n"
        "-A PREROUTING -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1400\nCOMMIT\n"
    )
    t = receive(pod(rules), tcp(CLIENT, 40000, POD, 80))
    assert t.disposition == Disposition.DELIVERED_LOCAL
    assert any(s.kind == StepKind.UNSUPPORTED and "TCPMSS" in s.detail for s in t.steps())
