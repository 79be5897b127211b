"""Parse once per analysis (issue 15): the parsed evidence, cached in the process by the evidence's hash and shared
by the analysis page, the explorer (rule table, rule detail, composer, structure) and what-if.

Before, every page re-parsed the analysis's iptables text (twice on the rule table: once for the rows, once for the
families), and the rule table re-explained every rule on every request: 30 s and 80 MB for a node-sized pod.

What is cached, each in a small LRU bounded by entries (16) and by the evidence text behind them (48 MB: an
80,000-rule ruleset, 12 MB of text, parses to a few hundred MB):

* `iptables(text)`: `parse_iptables(text, source="iptables")`, keyed by the text's SHA-256, so the parse the upload
  validated is the one the pages use (in the process that validated it: `make run`, or a web worker);
* `rows(analysis, family)`: every rule of one family as a rule-table row (text, explanation, target, ...) without
  the connections' hits, with a lower-cased haystack for the text filter; hits are added per request from the
  stored stories (they change with a re-run, the rows do not);
* `pod(analysis)`: the simulated pod (snapshot with the assumed sockets, Envoy config, profile) of the explorer.

Keys: the SHA-256 of the evidence (every evidence text and the pod fields the engine reads), computed once per
stored analysis (evidence is never changed after an analysis is created; a what-if copy is a new analysis).
The engine may grow its own parse-once cache; this one stays the web's index over it.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

from meshviz.analyses import services
from meshviz.analyses.models import Analysis
from meshviz.engine.api import (
    Family,
    IptablesParseResult,
    Ruleset,
    SimulatedPod,
    iptables_once,
    simulated_pod,
    structure,
)

T = TypeVar("T")

#: the fields of an analysis that decide what the engine parses and simulates
_EVIDENCE_FIELDS = (*services.EVIDENCE_FIELDS, "pod_ip", "proxy_uid", "proxy_gid", "app_ports", "labels")


class _LRU:
    """A small thread-safe LRU of computed values; a value is computed once even when threads ask at once.

    Bounded by a number of entries and by their weight (the size of the evidence text they were computed from:
    parsed objects take about 16 times that), so a few node-sized pods, or many typical ones, stay in memory."""

    def __init__(self, size: int, budget: int = 48 * 1024 * 1024) -> None:
        self.size = size
        self.budget = budget
        self.weights: dict[Hashable, int] = {}
        self.items: OrderedDict[Hashable, Any] = OrderedDict()
        self.lock = threading.Lock()
        self.computing: dict[Hashable, threading.Lock] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, compute: Callable[[], T], weight: int = 0) -> T:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                self.hits += 1
                return self.items[key]  # type: ignore[no-any-return]
            key_lock = self.computing.setdefault(key, threading.Lock())
        with key_lock:  # one thread computes, the others wait for its value
            with self.lock:
                if key in self.items:
                    self.hits += 1
                    return self.items[key]  # type: ignore[no-any-return]
            value = compute()
            with self.lock:
                self.misses += 1
                self.items[key] = value
                self.items.move_to_end(key)
                self.weights[key] = weight
                # the newest entry stays even when it alone is over the budget
                while len(self.items) > 1 and (len(self.items) > self.size or sum(self.weights.values()) > self.budget):
                    old, _ = self.items.popitem(last=False)
                    self.weights.pop(old, None)
                self.computing.pop(key, None)
            return value

    def clear(self) -> None:
        with self.lock:
            self.items.clear()
            self.weights.clear()
            self.hits = self.misses = 0


_IPTABLES = _LRU(16)
_ROWS = _LRU(16)
_PODS = _LRU(16)
_HASHES: OrderedDict[tuple[int, str], str] = OrderedDict()
#: evidence hash -> SHA-256 of its iptables text (the key of `_IPTABLES`, shared with the upload's validation)
_TEXT_HASHES: OrderedDict[str, str] = OrderedDict()
_HASHES_LOCK = threading.Lock()


def clear() -> None:
    """Forget everything (tests)."""
    for lru in (_IPTABLES, _ROWS, _PODS):
        lru.clear()
    with _HASHES_LOCK:
        _HASHES.clear()
        _TEXT_HASHES.clear()


def stats() -> dict[str, tuple[int, int]]:
    """(hits, misses) of each cache, for tests and benchmarks."""
    return {
        "iptables": (_IPTABLES.hits, _IPTABLES.misses),
        "rows": (_ROWS.hits, _ROWS.misses),
        "pod": (_PODS.hits, _PODS.misses),
    }


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def evidence_hash(analysis: Analysis) -> str:
    """SHA-256 of the analysis's evidence and the pod fields the engine reads (memoised per stored analysis)."""
    memo = (analysis.pk, str(analysis.created)) if analysis.pk is not None else None
    if memo is not None:
        with _HASHES_LOCK:
            if memo in _HASHES:
                return _HASHES[memo]
    h = hashlib.sha256()
    for name in _EVIDENCE_FIELDS:
        value = getattr(analysis, name)
        h.update(name.encode())
        h.update(b"\x00")
        h.update(str(value if value is not None else "").encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    digest = h.hexdigest()
    if memo is not None:
        with _HASHES_LOCK:
            _HASHES[memo] = digest
            while len(_HASHES) > 1024:
                _HASHES.popitem(last=False)
    return digest


def remember_iptables(text: str, parsed: IptablesParseResult) -> None:
    """Keep a parse made elsewhere (the upload's validation) for the pages."""
    _IPTABLES.get(text_hash(text), lambda: parsed, len(text))


def _validated(field: str, text: str, parsed: Any) -> None:
    if field == "iptables":
        remember_iptables(text, parsed)


services.PARSE_LISTENERS.append(_validated)


def _iptables_hash(analysis: Analysis) -> str:
    ekey = evidence_hash(analysis)
    with _HASHES_LOCK:
        known = _TEXT_HASHES.get(ekey)
    if known is None:
        known = text_hash(analysis.iptables)
        with _HASHES_LOCK:
            _TEXT_HASHES[ekey] = known
            while len(_TEXT_HASHES) > 1024:
                _TEXT_HASHES.popitem(last=False)
    return known


def iptables(analysis: Analysis) -> IptablesParseResult:
    """The analysis's iptables evidence parsed (`parse_iptables(..., source="iptables")`), once."""
    text = analysis.iptables
    # the engine's parse-once cache: the same parse as the analysis's stories when they ran in this process
    return _IPTABLES.get(_iptables_hash(analysis), lambda: iptables_once(text, source="iptables"), len(text))


def ruleset(analysis: Analysis, family: Family) -> Ruleset | None:
    return next((rs for rs in iptables(analysis).rulesets if rs.family == family), None)


def families(analysis: Analysis) -> list[str]:
    return [str(rs.family) for rs in iptables(analysis).rulesets]


@dataclass(frozen=True)
class Rows:
    """Every rule of one family as rule-table rows (hits empty), with what the text filter searches."""

    rows: tuple[structure.RuleRow, ...]
    haystacks: tuple[str, ...]
    tables: tuple[str, ...]
    targets: tuple[str, ...]
    chains_by_table: dict[str, tuple[str, ...]]
    #: (table, chain, index) -> position in `rows`
    position: dict[tuple[str, str, int], int]


def rows(analysis: Analysis, family: Family) -> Rows:
    def build() -> Rows:
        rs = ruleset(analysis, family)
        if rs is None:
            return Rows((), (), (), (), {}, {})
        all_rows = tuple(structure.rule_rows(rs, {}))
        chains: dict[str, list[str]] = {}
        for r in all_rows:
            names = chains.setdefault(r.table, [])
            if not names or names[-1] != r.chain:
                names.append(r.chain)
        return Rows(
            rows=all_rows,
            haystacks=tuple(f"{r.table} {r.chain} {r.text} {r.explanation}".lower() for r in all_rows),
            tables=tuple(sorted({r.table for r in all_rows})),
            targets=tuple(sorted({r.target for r in all_rows if r.target})),
            chains_by_table={t: tuple(sorted(set(c))) for t, c in chains.items()},
            position={(r.table, r.chain, r.index): i for i, r in enumerate(all_rows)},
        )

    return _ROWS.get((evidence_hash(analysis), str(family)), build, len(analysis.iptables))


def pod(analysis: Analysis) -> SimulatedPod:
    """The explorer's simulated pod (engine: `simulated_pod`), once per evidence."""
    return _PODS.get(
        evidence_hash(analysis),
        lambda: simulated_pod(services.evidence_of(analysis), services.DEFAULT_APP_PORT),
        sum(len(getattr(analysis, name) or "") for name in services.EVIDENCE_FIELDS),
    )


def warm(analysis: Analysis) -> None:
    """Build what the pages need (the parse, the pod family's rule rows, the explorer's pod) ahead of the first
    visit: called after a background run (meshviz.analyses.tasks), in the process that will serve the pages."""
    family = Family.IPV6 if ":" in str(analysis.pod_ip) else Family.IPV4
    rows(analysis, family)
    pod(analysis)
