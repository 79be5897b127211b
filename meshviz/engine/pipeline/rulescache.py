"""Parse each iptables text once (issue 15): `iptables_once(text, source, family, strict=...)` is
`parse_iptables(text, source, family, strict=...)`, kept for the last few texts and shared by everyone who reads them.

An upload's rules were parsed again and again: the upload's validation, the snapshot of every story
(`load_snapshot`, through `parsecache.parse_once`), the comparison's inferred settings and the repairs
(`parsecache.rules_once`), each with its own parse - five parses of a node-sized ruleset (80,000 rules, seconds each)
for one upload.  They now all come here, so a text is parsed once whoever asks first, and a parse that two threads
ask for at once is done once (the second waits for the first's result).

Entries are found by the text itself (Python keeps a str's hash once computed; equal texts compare with one memcmp)
and the other arguments.  The last `MAX_ENTRIES` texts are kept while they add up to at most `MAX_TEXT_BYTES` (a
parsed rule takes ~15x its text): two node-sized rulesets, an analysis's and a what-if's edited copy of it.  A parse
result is immutable and shared.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from meshviz.engine.core.model import Family
    from meshviz.engine.netfilter.parser import IptablesParseResult

MAX_ENTRIES = 32
MAX_TEXT_BYTES = 24 * 1024 * 1024

_Key = tuple[str, str, "Family | None", bool]


class _Rules:
    def __init__(self) -> None:
        self.entries: OrderedDict[_Key, IptablesParseResult] = OrderedDict()
        self.lock = threading.Lock()
        self.computing: dict[_Key, threading.Lock] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: _Key) -> IptablesParseResult:
        with self.lock:
            hit = self.entries.get(key)
            if hit is not None:
                self.entries.move_to_end(key)
                self.hits += 1
                return hit
            key_lock = self.computing.setdefault(key, threading.Lock())
        with key_lock:  # one thread parses, the others wait for its result
            with self.lock:
                hit = self.entries.get(key)
                if hit is not None:
                    self.hits += 1
                    return hit
            from meshviz.engine.netfilter.parser import parse_iptables

            text, source, family, strict = key
            parsed = parse_iptables(text, source=source, family=family, strict=strict)
            with self.lock:
                self.misses += 1
                self.entries[key] = parsed
                total = sum(len(k[0]) for k in self.entries)
                # the newest entry stays even when it alone is over the budget
                while len(self.entries) > 1 and (len(self.entries) > MAX_ENTRIES or total > MAX_TEXT_BYTES):
                    old, _ = self.entries.popitem(last=False)
                    total -= len(old[0])
                self.computing.pop(key, None)
            return parsed


_RULES = _Rules()


def iptables_once(
    text: str, source: str = "iptables", family: Family | None = None, *, strict: bool = True
) -> IptablesParseResult:
    """`parse_iptables(text, source=source, family=family, strict=strict)`, parsed once per text (see the module)."""
    return _RULES.get((text, source, family, strict))


def rules_cache_info() -> dict[str, int]:
    """Texts kept, their size, hits and misses so far."""
    with _RULES.lock:
        return {
            "entries": len(_RULES.entries),
            "text_bytes": sum(len(k[0]) for k in _RULES.entries),
            "hits": _RULES.hits,
            "misses": _RULES.misses,
        }


def rules_cache_clear() -> None:
    with _RULES.lock:
        _RULES.entries.clear()
        _RULES.hits = _RULES.misses = 0
