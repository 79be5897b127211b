"""The rule table: every rule of a ruleset in order with its explanation, and which connections hit it (read from
the stored stories' kernel steps).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from meshviz.engine.netfilter.explain import explain_rule
from meshviz.engine.netfilter.model import Ruleset
from meshviz.engine.netfilter.render import render_rule

# --------------------------------------------------------------------------
# Rule table
# --------------------------------------------------------------------------


RuleKey = tuple[str, str, int]


@dataclass(frozen=True)
class RuleRow:
    """One rule of the rule table.

    `text` is the rule as iptables-save prints it (`-A CHAIN ...`, canonical); `original` is the line as the user
    gave it (`-I ISTIO_INBOUND 1 ...`, `iptables -t nat -A ...`, counters ...); `hits` the 1-based numbers of the
    connections whose traces matched the rule.
    """

    family: str
    table: str
    chain: str
    index: int
    text: str
    target: str
    explanation: str
    source: str
    line: int
    hits: tuple[int, ...]
    original: str = ""
    goto: bool = False
    #: "iptables", or "nft" for a native nftables rule (`table` is then "FAMILY NAME", as nft traces name it)
    backend: str = "iptables"
    #: an nft rule's handle, when the evidence shows it (`nft -a list ruleset`)
    handle: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "table": self.table,
            "chain": self.chain,
            "index": self.index,
            "text": self.text,
            "original": self.original,
            "target": self.target,
            "goto": self.goto,
            "explanation": self.explanation,
            "source": self.source,
            "line": self.line,
            "hits": list(self.hits),
            "backend": self.backend,
            "handle": self.handle,
        }


def rule_rows(ruleset: Ruleset, hits: Mapping[RuleKey, Sequence[int]] | None = None) -> list[RuleRow]:
    """Every rule of the ruleset, in table order, then chain order, then index."""
    hits = hits or {}
    out: list[RuleRow] = []
    for table in ruleset.tables:
        for chain in table.chains:
            for index, rule in enumerate(chain.rules, 1):
                out.append(
                    RuleRow(
                        family=str(ruleset.family),
                        table=table.name,
                        chain=chain.name,
                        index=index,
                        text=render_rule(rule),
                        target=rule.target.name if rule.target is not None else "",
                        explanation=explain_rule(rule),
                        source=rule.ref.source if rule.ref is not None else ruleset.source,
                        line=rule.ref.line if rule.ref is not None else 0,
                        hits=tuple(hits.get((table.name, chain.name, index), ())),
                        original=rule.ref.text if rule.ref is not None else render_rule(rule),
                        goto=rule.target is not None and rule.target.goto,
                    )
                )
    return out


def _kernel_steps(story: Mapping[str, Any]) -> Iterable[tuple[str, str, list[dict[str, Any]]]]:
    """(story hop title, kernel hop name, that kernel hop's steps) for every traced hop of a stored story."""
    for hop in story.get("traces") or []:
        trace = hop.get("trace") or {}
        for khop in trace.get("hops") or []:
            yield str(hop.get("title") or ""), str(khop.get("name") or ""), list(khop.get("steps") or [])


def _rule_key(step: Mapping[str, Any]) -> RuleKey | None:
    if step.get("kind") != "RuleMatch" or not step.get("table") or not step.get("chain"):
        return None
    return (str(step["table"]), str(step["chain"]), int(step.get("index") or 0))


def hits_from_stories(stories: Sequence[Mapping[str, Any]]) -> dict[RuleKey, list[int]]:
    """(table, chain, 1-based index) -> the connection numbers (1-based) whose traces matched that rule."""
    hits: dict[RuleKey, list[int]] = defaultdict(list)
    for number, story in enumerate(stories, 1):
        for _, _, steps in _kernel_steps(story):
            for step in steps:
                key = _rule_key(step)
                if key is not None and number not in hits[key]:
                    hits[key].append(number)
    return dict(hits)


def steps_for_rule(
    stories: Sequence[Mapping[str, Any]], table: str, chain: str, index: int, context: int = 2
) -> list[dict[str, Any]]:
    """For each time a connection's trace matched the rule: the connection, the hop and the steps around it.

    Each item: `number` (1-based connection), `connection` (the stored connection dict), `hop` (the story hop's
    title, e.g. "client SYN"), `kernel_hop` (e.g. "PREROUTING"), `steps` (up to `context` steps before, the rule's
    step, up to `context` after, within the same trace, as stored) and `at` (the rule's position in `steps`).
    """
    want = (table, chain, int(index))
    out: list[dict[str, Any]] = []
    for number, story in enumerate(stories, 1):
        for hop in story.get("traces") or []:
            trace = hop.get("trace") or {}
            flat: list[tuple[str, dict[str, Any]]] = [
                (str(k.get("name") or ""), s) for k in trace.get("hops") or [] for s in k.get("steps") or []
            ]
            for i, (kname, step) in enumerate(flat):
                if _rule_key(step) != want:
                    continue
                lo = max(0, i - context)
                out.append(
                    {
                        "number": number,
                        "connection": dict(story.get("connection") or {}),
                        "hop": str(hop.get("title") or ""),
                        "kernel_hop": kname,
                        "steps": [s for _, s in flat[lo : i + context + 1]],
                        "at": i - lo,
                    }
                )
    return out
