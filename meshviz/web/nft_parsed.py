"""The explorer's parse of an analysis's native nftables evidence (`nft list ruleset`), once per evidence: the parsed
ruleset and the rule table's rows, beside meshviz/web/parsed.py's iptables cache (same LRU, same evidence hash).

An nft rule's row names its table "FAMILY NAME" (`inet istio-proxy-nat`), as the nft steps of the stored traces do,
so the rule table's hits and the steps around a rule come from the stories unchanged.
"""

from __future__ import annotations

from meshviz.analyses.models import Analysis
from meshviz.engine.api import Family, NftParseResult, nft_view, parse_nftables
from meshviz.web import parsed
from meshviz.web.parsed import _LRU, Rows

_NFT = _LRU(16)
_NFT_ROWS = _LRU(16)


def clear() -> None:
    """Forget everything (tests)."""
    _NFT.clear()
    _NFT_ROWS.clear()


def has_nftables(analysis: Analysis) -> bool:
    return bool((analysis.nftables or "").strip())


def has_iptables(analysis: Analysis) -> bool:
    return bool((analysis.iptables or "").strip())


def nftables(analysis: Analysis) -> NftParseResult:
    """The analysis's nft evidence parsed (`parse_nftables(..., source="nftables")`), once per text."""
    text = analysis.nftables or ""
    return _NFT.get(parsed.text_hash(text), lambda: parse_nftables(text, source="nftables"), len(text))


def rows(analysis: Analysis) -> Rows:
    """Every nft rule as a rule-table row (hits empty), with what the text filter searches."""

    def build() -> Rows:
        result = nftables(analysis)
        all_rows = tuple(nft_view.nft_rule_rows(result.ruleset, {}, from_json=result.format == "json"))
        chains: dict[str, dict[str, None]] = {}
        for r in all_rows:
            chains.setdefault(r.table, {})[r.chain] = None
        return Rows(
            rows=all_rows,
            haystacks=tuple(f"{r.table} {r.chain} {r.text} {r.explanation}".lower() for r in all_rows),
            tables=tuple(dict.fromkeys(r.table for r in all_rows)),
            targets=tuple(sorted({r.target for r in all_rows if r.target})),
            chains_by_table={t: tuple(sorted(c)) for t, c in chains.items()},
            position={(r.table, r.chain, r.index): i for i, r in enumerate(all_rows)},
        )

    return _NFT_ROWS.get(("nft", parsed.evidence_hash(analysis)), build, len(analysis.nftables or ""))


def iptables_tables(analysis: Analysis) -> dict[Family, set[str]]:
    """The iptables tables the analysis's iptables evidence has, per family (none without iptables evidence)."""
    if not has_iptables(analysis):
        return {}
    return {rs.family: {t.name for t in rs.tables} for rs in parsed.iptables(analysis).rulesets}
