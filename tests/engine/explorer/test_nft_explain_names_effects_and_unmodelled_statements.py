"""An nft rule explained: conditions in the rule's order with named selectors, then its effects; tproxy says it is not
a verdict (the evaluator's model), unmodelled statements are named with their reason, a comment is quoted."""

from __future__ import annotations

from meshviz.engine.nftables.explain import explain_nft_rule, verdict_target
from meshviz.engine.nftables.parser import parse_nftables


def _rule(text: str):  # type: ignore[no-untyped-def]
    parsed = parse_nftables(f"table inet t {{\nchain other {{\n}}\nchain c {{\n{text}\n}}\n}}\n")
    assert parsed.errors == (), parsed.errors
    table = parsed.ruleset.table("inet", "t")
    assert table is not None
    chain = table.chain("c")
    assert chain is not None
    return chain.rules[0]


def test_tproxy_reads_as_a_hand_off_that_is_not_a_verdict() -> None:
    rule = _rule("meta l4proto tcp ip daddr != 127.0.0.1 tproxy ip to :15006 meta mark set 0x539 accept")
    assert explain_nft_rule(rule) == (
        "protocol tcp and destination address not 127.0.0.1 -> hand to the transparent socket on :15006 (not a "
        "verdict: without one the chain goes on), then set mark to 0x539, then accept (in this base chain; later "
        "chains on the hook still run)"
    )
    assert verdict_target(rule) == "accept"


def test_sets_flags_and_jumps() -> None:
    rule = _rule('ct state established,related tcp dport { 80, 443 } jump other comment "web"')
    assert explain_nft_rule(rule) == (
        "conntrack state any of established,related and TCP destination port one of {80, 443} -> jump to chain other "
        '"web"'
    )
    assert verdict_target(rule) == "other"


def test_unmodelled_statements_are_named_with_their_reason() -> None:
    rule = _rule("limit rate 10/second accept")
    # the parser keeps the unmodelled statement and what follows it as one text, with its reason
    assert explain_nft_rule(rule) == "every packet -> unmodelled limit rate 10/second accept (rate limits not modelled)"
