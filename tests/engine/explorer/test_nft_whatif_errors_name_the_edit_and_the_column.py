"""A bad nft what-if edit is refused with `edit N`, line 1 and the column inside the text as the user wrote it (the
rule parsed by the nftables parser, an element checked against the set's key type); unknown tables, chains, sets and
out-of-range indexes are errors, never guesses; the other edits still apply."""

from __future__ import annotations

from meshviz.engine.explorer.edits import Edit
from meshviz.engine.explorer.whatif import apply_edits

from .nft_support import KUBE_PROXY_SCRIPT, TPROXY_LIST, nft_evidence


def _errors(text: str, *edits: Edit) -> list[tuple[str, int, int, str, str]]:
    result = apply_edits(nft_evidence(text), list(edits))
    return [(e.source, e.line, e.column, e.text, e.message) for e in result.errors]


def test_a_jump_to_a_missing_chain_points_at_the_chain_name() -> None:
    rule = "tcp dport 22 jump nowhere"
    [(source, line, column, text, message)] = _errors(
        TPROXY_LIST,
        Edit(
            op="insert", backend="nft", table="inet istio-proxy-nat", chain="output", index=1, rule="tcp dport 1 return"
        ),
        Edit(op="insert", backend="nft", table="inet istio-proxy-nat", chain="output", index=1, rule=rule),
    )
    assert (source, line, column, text) == ("edit 2", 1, rule.index("nowhere") + 1, rule)
    assert "nowhere" in message and "does not exist" in message


def test_an_unknown_statement_is_the_parsers_error_at_its_column() -> None:
    rule = "tcp dport 22 frobnicate"
    [(source, line, column, text, message)] = _errors(
        TPROXY_LIST, Edit(op="replace", backend="nft", table="istio-proxy-nat", chain="output", index=1, rule=rule)
    )
    assert (source, line, text) == ("edit 1", 1, rule)
    assert column == rule.index("frobnicate") + 1 and "frobnicate" in message


def test_a_rule_that_closes_its_chain_is_refused() -> None:
    rule = "accept } } table ip evil { chain c { drop"
    [(source, line, column, text, message)] = _errors(
        TPROXY_LIST, Edit(op="insert", backend="nft", table="istio-proxy-nat", chain="output", rule=rule)
    )
    assert (source, line, column, text) == ("edit 1", 1, rule.index("}") + 1, rule)
    assert "unbalanced braces" in message


def test_an_element_of_the_wrong_type_names_the_part() -> None:
    element = "172.16.0.99 . tcpx . 80 : goto endpoint-a"
    [(source, line, column, text, message)] = _errors(
        KUBE_PROXY_SCRIPT, Edit(op="add_element", table="kube-proxy", set="service-ips", element=element)
    )
    assert (source, line, column, text) == ("edit 1", 1, element.index("tcpx") + 1, element)
    assert "inet_proto" in message


def test_unknown_names_and_indexes_are_refused() -> None:
    nat = {"backend": "nft", "table": "inet istio-proxy-nat"}
    cases = [
        (Edit.from_dict({**nat, "op": "delete", "chain": "output", "index": 99}), "out of range"),
        (Edit.from_dict({**nat, "op": "delete", "chain": "nope", "index": 1}), "no chain 'nope'"),
        (Edit.from_dict({**nat, "op": "delete", "table": "inet nope", "chain": "output", "index": 1}), "no nft table"),
        (Edit(op="policy", table="inet istio-proxy-nat", chain="istio-redirect", value="drop"), "regular chain"),
        (Edit(op="policy", table="inet istio-proxy-nat", chain="output", value="reject"), "accept or drop"),
        (Edit(op="add_element", table="inet istio-proxy-nat", set="nope", element="1"), "no set or map"),
        (Edit(op="policy", backend="iptables", table="nat", chain="OUTPUT", value="drop"), "nft edit"),
    ]
    for edit, words in cases:
        [(source, _, _, _, message)] = _errors(TPROXY_LIST, edit)
        assert source == "edit 1" and words in message, (edit, message)


def test_json_evidence_is_not_edited_and_says_why() -> None:
    [(_, _, _, _, message)] = _errors('{"nftables": []}', Edit(op="policy", table="inet t", chain="c", value="drop"))
    assert "nft -j JSON" in message
