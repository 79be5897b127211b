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

from typing import TYPE_CHECKING

from meshviz.engine.core.bounded import BoundedCache

if TYPE_CHECKING:
    from meshviz.engine.core.model import Family
    from meshviz.engine.netfilter.parser import IptablesParseResult

MAX_ENTRIES = 32
MAX_TEXT_BYTES = 24 * 1024 * 1024

_Key = tuple[str, str, "Family | None", bool]


def _parse(key: _Key) -> IptablesParseResult:
    from meshviz.engine.netfilter.parser import parse_iptables

    text, source, family, strict = key
    return parse_iptables(text, source=source, family=family, strict=strict)


_RULES: BoundedCache[_Key, IptablesParseResult] = BoundedCache(
    lambda: (MAX_ENTRIES, MAX_TEXT_BYTES), lambda key, _parsed: len(key[0])
)


def iptables_once(
    text: str, source: str = "iptables", family: Family | None = None, *, strict: bool = True
) -> IptablesParseResult:
    """`parse_iptables(text, source=source, family=family, strict=strict)`, parsed once per text (see the module)."""
    key = (text, source, family, strict)
    return _RULES.get_or_compute(key, lambda: _parse(key))


def rules_cache_info() -> dict[str, int]:
    """Texts kept, their size, hits and misses so far."""
    info = _RULES.info()
    return {"entries": info["entries"], "text_bytes": info["size"], "hits": info["hits"], "misses": info["misses"]}


def rules_cache_clear() -> None:
    _RULES.clear()
