"""What-if rule edits on nft chains (backend "nft"): insert, replace, delete and move change only that rule's line, in
the style of the text (a listing's indentation, a script's `add rule ...` prefix, a `# handle N` kept), and the edited
text parses to exactly the expected chain."""

from __future__ import annotations

import pytest

from meshviz.engine.explorer.edits import Edit
from meshviz.engine.explorer.whatif import apply_edits, evidence_patch
from meshviz.engine.nftables.parser import parse_nftables

from .nft_support import KUBE_PROXY_SCRIPT, TPROXY_HANDLES, TPROXY_LIST, nft_evidence


def _chain(text: str, table: str, chain: str) -> list[str]:
    family, name = table.split()
    t = parse_nftables(text).ruleset.table(family, name)
    assert t is not None
    c = t.chain(chain)
    assert c is not None
    return [r.text() for r in c.rules]


def _changed_lines(before: str, after: str) -> list[str]:
    patch = evidence_patch(nft_evidence(before), nft_evidence(after))
    return [ln for ln in patch.splitlines() if ln[:1] in "+-" and ln[:3] not in ("+++", "---")]


@pytest.mark.parametrize("text", [TPROXY_LIST, TPROXY_HANDLES], ids=["listing", "listing-with-handles"])
def test_insert_replace_delete_move_in_a_listing(text: str) -> None:
    ev = nft_evidence(text)
    table, chain = "inet istio-proxy-mangle", "istio-inbound"
    old = _chain(text, table, chain)

    def edited(**kw: object) -> str:
        result = apply_edits(ev, [Edit.from_dict({"backend": "nft", "table": table, "chain": chain, **kw})])
        assert result.errors == ()
        return result.evidence.nftables or ""

    after = edited(op="insert", index=2, rule="tcp dport 22 return")
    assert _chain(after, table, chain) == [old[0], "tcp dport 22 return", *old[1:]]
    assert _changed_lines(text, after) == ["+\t\ttcp dport 22 return"]

    after = edited(op="insert", rule="tcp dport 23 drop")  # no index: appended
    assert _chain(after, table, chain) == [*old, "tcp dport 23 drop"]

    after = edited(op="replace", index=3, rule="tcp dport 24 counter accept")
    assert _chain(after, table, chain) == [*old[:2], "tcp dport 24 counter accept", *old[3:]]
    minus, plus = _changed_lines(text, after)
    assert minus.startswith("-") and plus.startswith("+\t\ttcp dport 24 counter accept")
    assert ("# handle" in minus) == ("# handle" in plus)  # the handle stays the rule's

    after = edited(op="delete", index=1)
    assert _chain(after, table, chain) == old[1:]
    assert len(_changed_lines(text, after)) == 1

    after = edited(op="move", index=1, to_index=3)
    assert _chain(after, table, chain) == [old[1], old[2], old[0], *old[3:]]
    # only that chain changed
    for t in parse_nftables(text).ruleset.tables:
        for c in t.chains:
            if (t.label, c.name) != (table, chain):
                assert _chain(after, t.label, c.name) == [r.text() for r in c.rules]


def test_edits_in_an_nft_script_keep_its_add_rule_style() -> None:
    ev = nft_evidence(KUBE_PROXY_SCRIPT)
    ins = apply_edits(
        ev,
        [
            Edit(
                op="insert",
                backend="nft",
                table="kube-proxy",
                chain="masquerading",
                index=1,
                rule="ip saddr 10.9.9.9 return",
            )
        ],
    )
    assert ins.errors == ()
    assert _changed_lines(KUBE_PROXY_SCRIPT, ins.evidence.nftables or "") == [
        "+add rule ip kube-proxy masquerading ip saddr 10.9.9.9 return"
    ]
    rep = apply_edits(
        ev, [Edit(op="replace", backend="nft", table="kube-proxy", chain="masquerading", index=2, rule="masquerade")]
    )
    assert _changed_lines(KUBE_PROXY_SCRIPT, rep.evidence.nftables or "") == [
        "-add rule ip kube-proxy masquerading masquerade fully-random",
        "+add rule ip kube-proxy masquerading masquerade",
    ]
    assert rep.changes == ("nft ip kube-proxy/masquerading: rule 2 replaced (line 10): masquerade",)


def test_the_table_may_be_named_alone_or_with_its_family() -> None:
    ev = nft_evidence(TPROXY_LIST)
    by_label = apply_edits(
        ev, [Edit(op="delete", backend="nft", table="inet istio-proxy-nat", chain="output", index=1)]
    )
    by_name = apply_edits(
        ev, [Edit(op="delete", backend="nft", table="istio-proxy-nat", family="inet", chain="output", index=1)]
    )
    assert by_label.errors == by_name.errors == ()
    assert by_label.evidence == by_name.evidence != ev
