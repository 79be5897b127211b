"""An nft ruleset written back as a listing (`nftables.write_listing`) reads back as the same ruleset: every `nft -j`
fixture, and kube-proxy's nftables mode (sets, verdict maps, numgen) from the bench generator."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from meshviz.engine.nftables.parser import parse_nftables
from meshviz.engine.nftables.write_listing import ruleset_listing, same_ruleset

LISTED = Path(__file__).resolve().parents[1] / "fixtures" / "nftables-listed"
BENCH = Path(__file__).resolve().parents[3] / "shared" / "bench"


@pytest.mark.parametrize("name", sorted(p.name for p in LISTED.glob("*.json")))
def test_json_fixture_written_as_a_listing_reads_back_the_same(name: str) -> None:
    parsed = parse_nftables((LISTED / name).read_text())
    assert parsed.format == "json" and not parsed.errors
    back = parse_nftables(ruleset_listing(parsed.ruleset))
    assert not back.errors, back.errors[:1]
    assert same_ruleset(back.ruleset, parsed.ruleset)


def test_a_changed_rule_is_not_the_same_ruleset() -> None:
    text = (LISTED / "capture-inbound-ports-wildcard.list").read_text()
    a = parse_nftables(text).ruleset
    b = parse_nftables(text.replace("redirect to :15006", "redirect to :15007")).ruleset
    assert not same_ruleset(a, b)


def test_kube_proxy_nftables_mode_written_as_a_listing_reads_back_the_same() -> None:
    if not (BENCH / "gen_kube_proxy_nft.py").exists():
        pytest.skip("the shared bench generator is not here")
    sys.path.insert(0, str(BENCH))
    try:
        from gen_kube_proxy_nft import generate  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(BENCH))
    parsed = parse_nftables(generate(50, 3, 7))
    assert not parsed.errors and parsed.ruleset.rule_count() > 100
    back = parse_nftables(ruleset_listing(parsed.ruleset))
    assert not back.errors and same_ruleset(back.ruleset, parsed.ruleset)
