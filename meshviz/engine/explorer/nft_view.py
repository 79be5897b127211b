"""The explorer's view of native nftables: the rule table's rows and the structure (tables, chains, sets and maps, and
the order in which base chains run at each hook, iptables' tables interleaved).

    rows = nft_rule_rows(nft_ruleset, hits_from_stories(stories))
    view = nft_structure(nft_ruleset, iptables_tables={"mangle", "nat"}, hits=hits)

An nft rule's row has `backend` "nft" and `table` "FAMILY NAME" (`inet istio-proxy-nat`): the trace steps of nft
rules name the table so (`nftables/evaluate.py`), so the stored stories' hits (`hits_from_stories`) and the steps
around a rule (`steps_for_rule`) work for nft rows unchanged.  The index is the rule's 1-based position in its chain
(what nft's `insert rule ... index N` counts from 0); the handle is shown only when the evidence has it (`nft -a`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from meshviz.engine.core.model import Family
from meshviz.engine.explorer.rule_table import RuleKey, RuleRow
from meshviz.engine.nftables.evaluate import BaseChain
from meshviz.engine.nftables.explain import explain_nft_rule, verdict_target
from meshviz.engine.nftables.hooks import IPTABLES_ORDER, NftHooks, is_iptables_nft, nat_priority, table_priority
from meshviz.engine.nftables.model import NftRule, NftRuleset, NftSet, NftTable, Verdict

#: elements of a set or map listed in the structure view (the rest are counted); kube-proxy's maps hold thousands
MAX_ELEMENTS = 200
#: regular chains listed per table (those a connection hit always; the rest are counted): kube-proxy has one
#: chain per service and per endpoint
MAX_CHAINS = 100
HOOKS = tuple(IPTABLES_ORDER)


def shown_handle(rule: NftRule, from_json: bool = False) -> int | None:
    """The rule's handle when the evidence printed it (`# handle N` of `nft -a`; every rule of `nft -j` JSON,
    `from_json`), else None: a listing without handles gets handles numbered by the parser, not the kernel's."""
    if rule.handle is None:
        return None
    if from_json or rule.ref is None or f"handle {rule.handle}" in rule.ref.text:
        return rule.handle
    return None


def nft_rule_rows(
    ruleset: NftRuleset, hits: Mapping[RuleKey, Sequence[int]] | None = None, from_json: bool = False
) -> list[RuleRow]:
    """Every nft rule, in table, chain and rule order, as a rule-table row (`from_json`: the ruleset is `nft -j`
    JSON, whose handles are the kernel's and whose `line` is the object's position in the `nftables` list)."""
    hits = hits or {}
    out: list[RuleRow] = []
    for table in ruleset.tables:
        for chain in table.chains:
            for index, rule in enumerate(chain.rules, 1):
                text = rule.text()
                out.append(
                    RuleRow(
                        family=table.family,
                        table=table.label,
                        chain=chain.name,
                        index=index,
                        text=text,
                        target=verdict_target(rule),
                        explanation=explain_nft_rule(rule),
                        source=rule.ref.source if rule.ref is not None else ruleset.source,
                        line=rule.ref.line if rule.ref is not None else 0,
                        hits=tuple(hits.get((table.label, chain.name, index), ())),
                        original=rule.ref.text if rule.ref is not None else text,
                        goto=any(isinstance(s, Verdict) and s.kind == "goto" for s in rule.statements),
                        backend="nft",
                        handle=shown_handle(rule, from_json),
                    )
                )
    return out


def _set_view(s: NftSet, limit: int) -> dict[str, Any]:
    return {
        "name": s.name,
        "kind": "map" if s.is_map else "set",
        "type": s.key_type + (f" : {s.data_type}" if s.data_type else ""),
        "flags": list(s.flags),
        "elements": [e.text() for e in s.elements[:limit]],
        "count": len(s.elements),
        "line": s.ref.line if s.ref is not None else 0,
    }


def _table_view(
    t: NftTable, hits: Mapping[RuleKey, Sequence[int]], limit: int, max_chains: int = MAX_CHAINS
) -> dict[str, Any]:
    hit_chains = {c for (label, c, _) in hits if label == t.label}
    regular = [c for c in t.chains if not c.base]
    keep = {c.name for c in regular if c.name in hit_chains}
    for c in regular:
        if len(keep) >= max_chains:
            break
        keep.add(c.name)
    chains = []
    for c in t.chains:
        if not c.base and c.name not in keep:
            continue
        chains.append(
            {
                "name": c.name,
                "base": c.base,
                "type": c.type,
                "hook": c.hook,
                "priority": c.priority,
                "policy": c.policy if c.base else None,
                "device": c.device,
                "rules": len(c.rules),
                "hit": sum(1 for i in range(1, len(c.rules) + 1) if hits.get((t.label, c.name, i))),
                "line": c.ref.line if c.ref is not None else 0,
            }
        )
    return {
        "family": t.family,
        "name": t.name,
        "label": t.label,
        "iptables_nft": is_iptables_nft(t),
        "chains": chains,
        "more_chains": len(regular) - sum(1 for c in regular if c.name in keep),
        "sets": [_set_view(s, limit) for s in t.sets],
    }


def _slot(bc: BaseChain, nat: bool) -> dict[str, Any]:
    return {
        "kind": "nft",
        "table": bc.table.label,
        "chain": bc.chain.name,
        "type": bc.chain.type,
        "priority": bc.priority,
        "policy": bc.chain.policy or "accept",
        "iptables_nft": is_iptables_nft(bc.table),
        "nat": nat,
    }


def hook_order(
    ruleset: NftRuleset, iptables_tables: Mapping[Family, Collection[str]], family: Family
) -> list[dict[str, Any]]:
    """Per hook, in kernel order, what runs for a packet of `family`: iptables' tables (those the iptables evidence
    has; "conntrack" is conntrack's own hook function) and nft base chains, in the order the simulator runs them
    (`nftables/hooks.py`: by priority, NAT chains inside the NAT core's slot, equal priorities newest first).

    Each hook: {"hook", "slots": [{"kind": "iptables"|"conntrack"|"nft", ...}]}; an nft slot has table, chain, type,
    priority, policy, `iptables_nft` (a table iptables-nft made: with iptables-save evidence too it runs once, as
    the iptables slot) and `nat` (it runs inside the NAT core, for a connection's first packet).
    """
    given = bool(any(iptables_tables.values()))
    hooks = NftHooks(ruleset, iptables_given=given)
    mine = set(iptables_tables.get(family, ()))
    out: list[dict[str, Any]] = []
    for hook in HOOKS:
        slots: list[dict[str, Any]] = []
        for slot in hooks.plan(family, hook, IPTABLES_ORDER[hook]):
            if isinstance(slot, BaseChain):
                slots.append(_slot(slot, nat=False))
            elif slot == "conntrack":
                slots.append({"kind": "conntrack", "table": "conntrack", "priority": -200})
            elif slot == "nat":
                for nat_slot in hooks.nat_lookups(family, hook):
                    if isinstance(nat_slot, BaseChain):
                        slots.append(_slot(nat_slot, nat=True))
                    elif "nat" in mine:
                        slots.append({"kind": "iptables", "table": "nat", "priority": nat_priority(hook), "nat": True})
            elif slot in mine:
                slots.append({"kind": "iptables", "table": slot, "priority": table_priority(slot, hook)})
        out.append({"hook": hook, "slots": slots})
    return out


def nft_structure(
    ruleset: NftRuleset,
    iptables_tables: Mapping[Family, Collection[str]] | None = None,
    hits: Mapping[RuleKey, Sequence[int]] | None = None,
    family: Family = Family.IPV4,
    max_elements: int = MAX_ELEMENTS,
    max_chains: int = MAX_CHAINS,
) -> dict[str, Any]:
    """Tables (family, name; every base chain with type/hook/priority/policy, up to `max_chains` regular chains -
    those a connection hit first - `more_chains` counting the rest, each with rule and hit counts; sets and maps
    with type, flags and up to `max_elements` elements, `count` all of them) and the hook order for `family` (see
    `hook_order`).  `iptables_tables`: the iptables tables the evidence has, per family."""
    hits = hits or {}
    return {
        "family": family.value,
        "tables": [_table_view(t, hits, max_elements, max_chains) for t in ruleset.tables],
        "hooks": hook_order(ruleset, iptables_tables or {}, family),
        "rules": ruleset.rule_count(),
    }


__all__ = ["MAX_CHAINS", "MAX_ELEMENTS", "hook_order", "nft_rule_rows", "nft_structure", "shown_handle"]
