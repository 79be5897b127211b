"""The TPROXY rule of the bundled TPROXY example reads like the sentence in issue 6."""

from __future__ import annotations

from meshviz.engine.netfilter.explain import explain_rule
from meshviz.engine.netfilter.parser import parse_iptables
from meshviz.engine.netfilter.render import rule_text

from .helpers import TPROXY_OK, evidence


def test_tproxy_rule_explanation() -> None:
    rs = parse_iptables(evidence(TPROXY_OK).iptables).rulesets[0]
    mangle = rs.table("mangle")
    assert mangle is not None
    chain = mangle.chain("ISTIO_TPROXY")
    assert chain is not None
    (rule,) = chain.rules
    assert explain_rule(rule) == (
        "TCP to any address except 127.0.0.1 -> transparently hand to port 15006 and set mark 1337"
    )


def test_mark_connmark_and_owner_rules_of_the_same_pod() -> None:
    rs = parse_iptables(evidence(TPROXY_OK).iptables).rulesets[0]
    texts = {rule_text(r): explain_rule(r) for t in rs.tables for c in t.chains for r in c.rules}
    assert texts["-A PREROUTING -p tcp -m mark --mark 1337 -j CONNMARK --save-mark"] == (
        "TCP whose packet mark is 1337 (0x539) -> save the packet mark into the connection mark"
    )
    assert texts["-A OUTPUT -p tcp -m connmark --mark 1337 -j CONNMARK --restore-mark"] == (
        "TCP whose connection mark is 1337 (0x539) -> restore the connection mark onto the packet mark"
    )
    owner = texts["-A OUTPUT ! -d 127.0.0.1/32 -p tcp -o lo -m owner --uid-owner 1337 -j MARK --set-mark 1338"]
    assert owner == (
        "TCP to any address except 127.0.0.1, leaving via lo, sent by a local process running as uid 1337"
        " -> set the packet mark to 1338"
    )
    ct = texts["-A ISTIO_INBOUND -p tcp -m conntrack --ctstate RELATED,ESTABLISHED -j ISTIO_DIVERT"]
    assert ct.startswith("TCP in conntrack state RELATED,ESTABLISHED")
    assert ct.endswith("-> jump to chain ISTIO_DIVERT (back here if it returns)")
