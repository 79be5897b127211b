"""The rule table of an nft pod: every rule in table, chain and rule order, its table as "FAMILY NAME" (what nft
trace steps say), its text, source line, explanation and target, and its handle only when the evidence shows it."""

from __future__ import annotations

from meshviz.engine.explorer.nft_view import nft_rule_rows
from meshviz.engine.nftables.parser import parse_nftables

from .nft_support import KUBE_PROXY_SCRIPT, TPROXY_HANDLES, TPROXY_LIST


def test_every_nft_rule_is_a_row_in_order_with_its_line() -> None:
    parsed = parse_nftables(TPROXY_LIST, source="nftables")
    rows = nft_rule_rows(parsed.ruleset)
    assert len(rows) == parsed.ruleset.rule_count()
    expected = [
        (t.label, c.name, i, r.text())
        for t in parsed.ruleset.tables
        for c in t.chains
        for i, r in enumerate(c.rules, 1)
    ]
    assert [(r.table, r.chain, r.index, r.text) for r in rows] == expected
    lines = TPROXY_LIST.splitlines()
    for row in rows:
        assert row.backend == "nft"
        assert row.family == row.table.split()[0]
        assert lines[row.line - 1].strip() == row.original
        assert row.handle is None  # the listing has no `# handle N`: the parser's numbers are not shown


def test_a_listing_with_handles_shows_them() -> None:
    rows = nft_rule_rows(parse_nftables(TPROXY_HANDLES).ruleset)
    lines = TPROXY_HANDLES.splitlines()
    assert all(row.handle is not None and lines[row.line - 1].endswith(f"# handle {row.handle}") for row in rows)


def test_json_rules_show_their_handles() -> None:
    from .nft_support import LISTED

    parsed = parse_nftables((LISTED / "capture-tproxy.json").read_text())
    assert parsed.format == "json"
    rows = nft_rule_rows(parsed.ruleset, from_json=True)
    assert rows and all(row.handle is not None for row in rows)
    assert [r.handle for r in rows] == [r.handle for r in nft_rule_rows(parse_nftables(TPROXY_HANDLES).ruleset)]


def test_target_and_explanation_follow_the_verdict_and_statements() -> None:
    rows = {(r.chain, r.index): r for r in nft_rule_rows(parse_nftables(KUBE_PROXY_SCRIPT).ruleset)}
    jump = rows[("nat-output", 1)]
    assert jump.target == "services" and jump.explanation == "every packet -> jump to chain services"
    vmap = rows[("services", 1)]
    assert vmap.target == "vmap" and "map @service-ips" in vmap.explanation
    masq = rows[("masquerading", 1)]
    assert masq.target == "return" and masq.explanation.startswith("mark & 0x00004000 ")
    dnat = rows[("endpoint-a", 1)]
    assert dnat.target == "dnat" and dnat.explanation == "protocol tcp -> destination NAT to 10.0.0.2:8080"


def test_hits_are_keyed_like_the_nft_trace_steps() -> None:
    rs = parse_nftables(TPROXY_LIST).ruleset
    rows = nft_rule_rows(rs, {("inet istio-proxy-mangle", "istio-tproxy", 1): [1, 3]})
    hit = [r for r in rows if r.hits]
    assert [(r.table, r.chain, r.index, r.hits) for r in hit] == [
        ("inet istio-proxy-mangle", "istio-tproxy", 1, (1, 3))
    ]
