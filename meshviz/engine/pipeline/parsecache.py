"""Parse once per evidence: the texts' parsed snapshot and its Host (every chain's index), kept by the evidence's hash.

    parsed = parse_once(iptables=text, ip_rule=..., pod_ip="10.0.0.10")          # or key=<the evidence's sha256>
    parsed.snapshot, parsed.errors, parsed.warnings    # api.load_snapshot's result, parsed once
    parsed.host()                                      # the Host, indexed once, on first use

The story (`api.load_pod`, hence `api.run_story`, `evidence.pod_of`, what-if and the explorer through them) asks for
the same evidence again and again: a page, a what-if edit, every connection of an analysis.  Parsing a node-sized
ruleset takes seconds and indexing its chains (`simulate.Host`) a good part of one, so both are done once and the
immutable results are shared (a Host only fills its lazy indexes; what it answers never changes).

Entries are found by the texts themselves (Python keeps a str's hash once computed, and equal texts compare with
one memcmp, the same object without it) and the other arguments; a caller that already has the evidence's hash (an
analysis stores one; `evidence_key` computes a SHA-256 of texts and arguments) may give it as `key` instead, with
the other arguments - it must then stand for the texts.
Entries are kept for the last `MAX_ENTRIES` evidences and while their texts add up to at most `MAX_TEXT_BYTES`
(parsed, a rule takes ~15x its text), the most recently used first.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from meshviz.engine.core.bounded import BoundedCache
from meshviz.engine.core.model import Family

if TYPE_CHECKING:
    from meshviz.engine.core.errors import ParseError, ParseWarning
    from meshviz.engine.core.model import IPAddress
    from meshviz.engine.netfilter.parser import IptablesParseResult
    from meshviz.engine.pipeline.load import LoadResult
    from meshviz.engine.sim.simulate import Host
    from meshviz.engine.sim.snapshot import Snapshot

T = TypeVar("T")

#: The evidence texts `parse_once` takes, in `api.load_snapshot`'s names.
TEXTS = ("iptables", "ip_rule", "ip_route", "sysctl", "ip6tables", "ip6_rule", "ip6_route", "addr", "nftables")

MAX_ENTRIES = 8
MAX_TEXT_BYTES = 16 * 1024 * 1024
MAX_MEMO = 16


@dataclass(frozen=True)
class Parsed:
    key: object
    loaded: LoadResult
    size: int
    _host: list[Host] = field(default_factory=list, compare=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)
    _host_lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)
    _memo: dict[Hashable, tuple[object, Any]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def snapshot(self) -> Snapshot:
        return self.loaded.snapshot

    @property
    def errors(self) -> tuple[ParseError, ...]:
        return self.loaded.errors

    @property
    def warnings(self) -> tuple[ParseWarning, ...]:
        return self.loaded.warnings

    def memo(self, key: Hashable, compute: Callable[[], T], *, keep: object = None) -> T:
        """`compute()`, kept with this parse under `key` (what is derived from the snapshot alone and the arguments
        in `key`, e.g. the pod's profile: every story of a node-sized pod derived it again from its 80,000 rules).
        `keep` is an object `key` names by its id (the Envoy config): it is kept alive with the value, and a value
        kept for another object of the same id is not returned.  At most `MAX_MEMO` values per parse."""
        with self._lock:
            hit = self._memo.get(key)
        if hit is not None and hit[0] is keep:
            return hit[1]  # type: ignore[no-any-return]
        value = compute()
        with self._lock:
            if len(self._memo) >= MAX_MEMO:
                self._memo.clear()
            self._memo[key] = (keep, value)
        return value

    def host(self) -> Host:
        """The snapshot's Host, built on first use and shared (also by `api.host_for`)."""
        if not self._host:
            with self._host_lock:
                if not self._host:
                    from meshviz.engine.sim.simulate import host_for

                    self._host.append(host_for(self.loaded.snapshot))
        return self._host[0]


def evidence_key(
    *,
    pod_ip: str | IPAddress | None = None,
    sources: dict[str, str] | None = None,
    strict: bool = True,
    **texts: str | None,
) -> str:
    """SHA-256 (hex) of the evidence texts and the arguments that change what they parse to."""
    h = hashlib.sha256()
    for name in TEXTS:
        text = texts.pop(name, None)
        if text is None:
            h.update(f"{name}:none;".encode())
        else:
            data = text.encode("utf-8", "surrogatepass")
            h.update(f"{name}:{len(data)}:".encode())
            h.update(data)
    if texts:
        raise TypeError(f"unknown evidence: {', '.join(sorted(texts))}")
    h.update(repr((str(pod_ip) if pod_ip is not None else None, sorted((sources or {}).items()), strict)).encode())
    return h.hexdigest()


_CACHE: BoundedCache[object, Parsed] = BoundedCache(
    lambda: (MAX_ENTRIES, MAX_TEXT_BYTES), lambda _key, parsed: parsed.size
)


def parse_once(
    *,
    key: str | None = None,
    pod_ip: str | IPAddress | None = None,
    sources: dict[str, str] | None = None,
    strict: bool = True,
    **texts: str | None,
) -> Parsed:
    """`api.load_snapshot(**texts, pod_ip=..., sources=..., strict=...)`, parsed once per evidence (see the module)."""
    from meshviz.engine.pipeline.load import load_snapshot

    unknown = set(texts) - set(TEXTS)
    if unknown:
        raise TypeError(f"unknown evidence: {', '.join(sorted(unknown))}")
    args = (str(pod_ip) if pod_ip is not None else None, tuple(sorted((sources or {}).items())), strict)
    entry_key: object = ("given", key, args) if key is not None else (tuple(texts.get(n) for n in TEXTS), args)
    hit = _CACHE.get(entry_key)
    if hit is not None:
        return hit
    loaded = load_snapshot(**texts, pod_ip=pod_ip, sources=sources, strict=strict)  # type: ignore[arg-type]
    size = sum(len(t) for t in texts.values() if t)
    return _CACHE.put(entry_key, Parsed(entry_key, loaded, size))


def cache_info() -> dict[str, int]:
    """Entries kept, their texts' size, hits and misses so far."""
    info = _CACHE.info()
    return {"entries": info["entries"], "text_bytes": info["size"], "hits": info["hits"], "misses": info["misses"]}


def cache_clear() -> None:
    _CACHE.clear()


def rules_once(text: str, source: str | None = None, family: Family | None = None) -> IptablesParseResult:
    """`parse_iptables(text, source, family)`, the same parse as the snapshot's (`rulescache.iptables_once`): the
    comparison and the repairs read the rules of the evidence several times (the settings behind them, the marks,
    the chains to patch).  `source` defaults to the evidence kind's ("iptables", or "ip6tables" for IPv6 rules), as
    `load_snapshot` names it, so the story, the comparison and the repairs share one parse."""
    from meshviz.engine.pipeline.rulescache import iptables_once

    if source is None:
        source = "ip6tables" if family == Family.IPV6 else "iptables"
    return iptables_once(text, source=source, family=family)
