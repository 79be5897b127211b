"""Jumps, gotos, RETURN, implicit returns and built-in chain policies."""

from meshviz.engine.core.trace import Disposition, StepKind

from .helpers import CLIENT, POD, pod, receive, rule_hits, tcp


def test_return_from_user_chain_continues_after_the_jump() -> None:
    rules = """*filter
:INPUT DROP [0:0]
:A - [0:0]
-A INPUT -j A
-A INPUT -p tcp --dport 80 -j ACCEPT
-A A -p tcp -j RETURN
-A A -j DROP
COMMIT
"""
    t = receive(pod(rules), tcp(CLIENT, 40000, POD, 80))
    assert t.disposition == Disposition.DELIVERED_LOCAL
    assert rule_hits(t) == [("filter", "INPUT", 1), ("filter", "A", 1), ("filter", "INPUT", 2)]


def test_goto_does_not_come_back_to_the_caller() -> None:
    rules = """*filter
:INPUT ACCEPT [0:0]
:B - [0:0]
-A INPUT -g B
-A INPUT -j DROP
-A B -p udp -j ACCEPT
COMMIT
"""
    t = receive(pod(rules), tcp(CLIENT, 40000, POD, 80))
    # B ends without a verdict: a goto returns to INPUT's caller, i.e. the policy (ACCEPT).
    assert t.disposition == Disposition.DELIVERED_LOCAL
    assert ("filter", "INPUT", 2) not in rule_hits(t)


def test_builtin_chain_policy_drop_applies_at_the_end() -> None:
    rules = "*filter\n:INPUT DROP [0:0]\n-A INPUT -p udp -j ACCEPT\nCOMMIT\n"
    t = receive(pod(rules), tcp(CLIENT, 40000, POD, 80))
    assert t.disposition == Disposition.DROPPED
    assert any(s.kind == StepKind.POLICY for s in t.steps())


def test_reject_is_reported_with_its_type() -> None:
    rules = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -j REJECT --reject-with tcp-reset\nCOMMIT\n"
    t = receive(pod(rules), tcp(CLIENT, 40000, POD, 80))
    assert t.disposition == Disposition.REJECTED
    assert "tcp-reset" in t.detail


def test_every_rule_step_cites_table_chain_index_and_line() -> None:
    rules = '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -m comment --comment "hello" -j ACCEPT\nCOMMIT\n'
    t = receive(pod(rules), tcp(CLIENT, 40000, POD, 80))
    (step,) = t.rules_hit()
    assert (step.table, step.chain, step.index, step.line) == ("filter", "INPUT", 1, 3)
    assert step.rule is not None and '"hello"' in step.rule
