"""nftables model -> JSON-ready dicts (`parse --kind nftables --format json|summary`)."""

from __future__ import annotations

from typing import Any

from meshviz.engine.nftables.model import NftChain, NftParseResult, NftRule, NftSet, NftTable, Unmodelled


def _rule(r: NftRule) -> dict[str, Any]:
    d: dict[str, Any] = {"text": r.text(), "statements": [type(s).__name__ for s in r.statements]}
    if r.handle is not None:
        d["handle"] = r.handle
    if r.comment:
        d["comment"] = r.comment
    if r.ref is not None:
        d["line"] = r.ref.line
    unmodelled = [s.why for s in r.statements if isinstance(s, Unmodelled)]
    if unmodelled:
        d["unmodelled"] = unmodelled
    return d


def _chain(c: NftChain) -> dict[str, Any]:
    d: dict[str, Any] = {"name": c.name}
    if c.base:
        d.update(type=c.type, hook=c.hook, priority=c.priority, policy=c.policy or "accept")
        if c.device:
            d["device"] = c.device
    d["rules"] = [_rule(r) for r in c.rules]
    return d


def _set(s: NftSet) -> dict[str, Any]:
    return {
        "name": s.name,
        "kind": "map" if s.is_map else "set",
        "type": s.key_type + (f" : {s.data_type}" if s.data_type else ""),
        "flags": list(s.flags),
        "elements": [e.text() for e in s.elements],
    }


def _table(t: NftTable) -> dict[str, Any]:
    return {
        "family": t.family,
        "name": t.name,
        "chains": [_chain(c) for c in t.chains],
        "sets": [_set(s) for s in t.sets],
    }


def nft_to_dict(r: NftParseResult) -> dict[str, Any]:
    return {
        "format": r.format,
        "tables": [_table(t) for t in r.ruleset.tables],
        "warnings": [w.to_dict() for w in r.warnings],
    }


def nft_summary(r: NftParseResult) -> dict[str, Any]:
    """Counts and base chains: a listing's chains and rules are counted, not built (`NftTable.chain_count`)."""
    out: dict[str, Any] = {"format": r.format, "tables": len(r.ruleset.tables), "rules": r.ruleset.rule_count()}
    for t in r.ruleset.tables:
        base = [
            f"{c.name} ({c.type} hook {c.hook} priority {c.priority} policy {c.policy or 'accept'})"
            for c in t.base_chains()
        ]
        out[f"table {t.label}"] = (
            f"{t.chain_count()} chains, {t.rule_count()} rules, {len(t.sets)} sets/maps; "
            f"base chains: {', '.join(base) or 'none'}"
        )
    unmodelled = r.ruleset.unmodelled_count()
    if unmodelled:
        out["unmodelled statements"] = unmodelled
    out["warnings"] = len(r.warnings)
    return out
