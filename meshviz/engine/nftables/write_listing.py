"""An nft ruleset written back as `nft list ruleset` block syntax (what `nft -f` reads), and a check that it reads
back the same.

    text = ruleset_listing(parse_nftables(json_text).ruleset)   # `nft -j` evidence as a listing
    same_ruleset(parse_nftables(text).ruleset, original)       # True when nothing was lost on the way

Counter values and handles are not written (they are no part of what the rules do).
"""

from __future__ import annotations

from meshviz.engine.nftables.model import Counter, NftChain, NftRule, NftRuleset, NftSet, NftTable, Statement

__all__ = ["ruleset_listing", "same_ruleset"]


def _rule(r: NftRule) -> str:
    comment = f' comment "{r.comment}"' if r.comment else ""
    return r.text() + comment


def _set(s: NftSet) -> list[str]:
    kind = "map" if s.is_map else "set"
    lines = [f"\t{kind} {s.name} {{", f"\t\ttype {s.key_type}" + (f" : {s.data_type}" if s.data_type else "")]
    if s.flags:
        lines.append("\t\tflags " + ",".join(s.flags))
    if s.elements:
        lines.append("\t\telements = { " + ", ".join(e.text() for e in s.elements) + " }")
    lines.append("\t}")
    return lines


def _chain(c: NftChain) -> list[str]:
    lines = [f"\tchain {c.name} {{"]
    if c.base:
        device = f" device {c.device}" if c.device else ""
        lines.append(f"\t\ttype {c.type} hook {c.hook}{device} priority {c.priority}; policy {c.policy or 'accept'};")
    lines += [f"\t\t{_rule(r)}" for r in c.rules]
    lines.append("\t}")
    return lines


def _table(t: NftTable) -> str:
    body: list[str] = []
    for s in t.sets:
        body += _set(s)
    for c in t.chains:
        body += _chain(c)
    return "\n".join([f"table {t.family} {t.name} {{", *body, "}"]) + "\n"


def ruleset_listing(rs: NftRuleset) -> str:
    """The ruleset in `nft list ruleset` block syntax, tables in their order."""
    return "".join(_table(t) for t in rs.tables)


def _statements(r: NftRule) -> tuple[Statement, ...]:
    """The rule's statements, counter values aside."""
    return tuple(Counter() if isinstance(s, Counter) else s for s in r.statements)


def _chain_shape(c: NftChain) -> tuple[object, ...]:
    rules = [(_statements(r), r.comment) for r in c.rules]
    return (c.name, c.type, c.hook, c.priority, c.policy or "accept", c.device, rules)


def _set_shape(s: NftSet) -> tuple[object, ...]:
    return (s.name, s.key_type, s.data_type, s.flags, [e.text() for e in s.elements])


def _shape(rs: NftRuleset) -> list[tuple[object, ...]]:
    return [(t.family, t.name, [_set_shape(s) for s in t.sets], [_chain_shape(c) for c in t.chains]) for t in rs.tables]


def same_ruleset(a: NftRuleset, b: NftRuleset) -> bool:
    """The same tables, sets and chains with the same statements (counter values, handles and source lines
    aside)."""
    return _shape(a) == _shape(b)
