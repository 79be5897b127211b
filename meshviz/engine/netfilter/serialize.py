"""JSON-safe dictionaries for rulesets, and a summary of a parse.

    d = ruleset_to_dict(ruleset)          # plain dicts, lists, strings, ints, bools, None
    assert ruleset_from_dict(d) == ruleset
    parse_summary(result)                 # counts for a UI or a CLI

Addresses are written as strings (`"10.0.0.0/8"`); SourceRefs are kept.
Every key is always present, so consumers need no defaults; `*_from_dict`
accept dictionaries without the keys whose value would be the default.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from meshviz.engine.core.model import Family, SourceRef
from meshviz.engine.netfilter.model import (
    AddrCriterion,
    Chain,
    IfaceCriterion,
    Match,
    MatchOption,
    Rule,
    Ruleset,
    Table,
    Target,
)
from meshviz.engine.netfilter.parser import IptablesParseResult

JSON = dict[str, Any]


# --------------------------------------------------------------------------
# to dict
# --------------------------------------------------------------------------


def _ref(ref: SourceRef | None) -> JSON | None:
    return None if ref is None else {"source": ref.source, "line": ref.line, "text": ref.text}


def _counters(c: tuple[int, int] | None) -> list[int] | None:
    return None if c is None else [c[0], c[1]]


def _options(opts: tuple[MatchOption, ...]) -> list[JSON]:
    return [{"name": o.name, "values": list(o.values), "negated": o.negated} for o in opts]


def _addr(a: AddrCriterion | None) -> JSON | None:
    return None if a is None else {"network": str(a.network), "negated": a.negated}


def _iface(i: IfaceCriterion | None) -> JSON | None:
    return None if i is None else {"name": i.name, "negated": i.negated}


def rule_to_dict(rule: Rule) -> JSON:
    return {
        "table": rule.table,
        "chain": rule.chain,
        "protocol": rule.protocol,
        "protocol_negated": rule.protocol_negated,
        "src": _addr(rule.src),
        "dst": _addr(rule.dst),
        "in_iface": _iface(rule.in_iface),
        "out_iface": _iface(rule.out_iface),
        "fragment": rule.fragment,
        "matches": [{"module": m.module, "implicit": m.implicit, "options": _options(m.options)} for m in rule.matches],
        "target": None
        if rule.target is None
        else {"name": rule.target.name, "goto": rule.target.goto, "options": _options(rule.target.options)},
        "counters": _counters(rule.counters),
        "ref": _ref(rule.ref),
    }


def chain_to_dict(chain: Chain) -> JSON:
    return {
        "name": chain.name,
        "policy": chain.policy,
        "builtin": chain.builtin,
        "counters": _counters(chain.counters),
        "ref": _ref(chain.ref),
        "rules": [rule_to_dict(r) for r in chain.rules],
    }


def ruleset_to_dict(ruleset: Ruleset) -> JSON:
    return {
        "family": ruleset.family.value,
        "source": ruleset.source,
        "tables": [{"name": t.name, "chains": [chain_to_dict(c) for c in t.chains]} for t in ruleset.tables],
    }


# --------------------------------------------------------------------------
# from dict
# --------------------------------------------------------------------------


def _ref_from(d: JSON | None) -> SourceRef | None:
    return None if d is None else SourceRef(str(d["source"]), int(d["line"]), str(d["text"]))


def _counters_from(c: list[int] | None) -> tuple[int, int] | None:
    return None if c is None else (int(c[0]), int(c[1]))


def _options_from(items: list[JSON] | None) -> tuple[MatchOption, ...]:
    return tuple(
        MatchOption(str(o["name"]), tuple(str(v) for v in o.get("values", ())), bool(o.get("negated", False)))
        for o in items or ()
    )


def _addr_from(d: JSON | None) -> AddrCriterion | None:
    if d is None:
        return None
    return AddrCriterion(ipaddress.ip_network(str(d["network"]), strict=False), bool(d.get("negated", False)))


def _iface_from(d: JSON | None) -> IfaceCriterion | None:
    return None if d is None else IfaceCriterion(str(d["name"]), bool(d.get("negated", False)))


def rule_from_dict(d: JSON) -> Rule:
    t = d.get("target")
    return Rule(
        table=str(d["table"]),
        chain=str(d["chain"]),
        protocol=d.get("protocol"),
        protocol_negated=bool(d.get("protocol_negated", False)),
        src=_addr_from(d.get("src")),
        dst=_addr_from(d.get("dst")),
        in_iface=_iface_from(d.get("in_iface")),
        out_iface=_iface_from(d.get("out_iface")),
        fragment=d.get("fragment"),
        matches=tuple(
            Match(str(m["module"]), _options_from(m.get("options")), bool(m.get("implicit", False)))
            for m in d.get("matches") or ()
        ),
        target=None
        if t is None
        else Target(str(t["name"]), _options_from(t.get("options")), bool(t.get("goto", False))),
        counters=_counters_from(d.get("counters")),
        ref=_ref_from(d.get("ref")),
    )


def chain_from_dict(d: JSON) -> Chain:
    return Chain(
        name=str(d["name"]),
        rules=tuple(rule_from_dict(r) for r in d.get("rules") or ()),
        policy=d.get("policy"),
        builtin=bool(d.get("builtin", False)),
        counters=_counters_from(d.get("counters")),
        ref=_ref_from(d.get("ref")),
    )


def ruleset_from_dict(d: JSON) -> Ruleset:
    return Ruleset(
        family=Family(d["family"]),
        tables=tuple(
            Table(str(t["name"]), tuple(chain_from_dict(c) for c in t.get("chains") or ()))
            for t in d.get("tables") or ()
        ),
        source=str(d.get("source", "<iptables>")),
    )


# --------------------------------------------------------------------------
# summary
# --------------------------------------------------------------------------


def parse_summary(result: IptablesParseResult) -> JSON:
    """Counts of an `IptablesParseResult`: format, families, tables, chains, rules, warnings, errors.

    `per_table` lists every table of every family with its chain and rule counts.
    """
    per_table = [
        {
            "family": rs.family.value,
            "table": t.name,
            "chains": t.chain_count(),
            "rules": t.rule_count(),
        }
        for rs in result.rulesets
        for t in rs.tables
    ]
    return {
        "format": result.format,
        "families": [rs.family.value for rs in result.rulesets],
        "tables": len(per_table),
        "chains": sum(p["chains"] for p in per_table),
        "rules": sum(p["rules"] for p in per_table),
        "warnings": len(result.warnings),
        "errors": len(result.errors),
        "per_table": per_table,
    }
