"""A bounded, thread-safe cache of the last few entries: the engine's parse-once caches (`pipeline/parsecache.py`,
`pipeline/rulescache.py`) are this, with their own keys, sizes and limits.

At most `max_entries` entries whose sizes add up to at most `max_size` are kept, least recently used first out; the
newest entry stays even when it alone is over the budget.  The limits are read on every insertion (a callable), so a
module's constants stay the one place to change them.  `get_or_compute` computes a missing value once however many
threads ask for it at the same time (the others wait for its result)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    def __init__(self, limits: Callable[[], tuple[int, int]], size_of: Callable[[K, V], int]) -> None:
        self._limits = limits
        self._size_of = size_of
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()
        self._computing: dict[K, threading.Lock] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: K) -> V | None:
        """The value kept for `key` (now the most recent), or None; counts a hit."""
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None:
                self._entries.move_to_end(key)
                self.hits += 1
            return hit

    def put(self, key: K, value: V) -> V:
        """Keep `value` for `key` unless one is kept already (a value computed twice at once: the first stays);
        returns the value kept.  Counts a miss."""
        with self._lock:
            kept = self._entries.setdefault(key, value)
            self._entries.move_to_end(key)
            self.misses += 1
            max_entries, max_size = self._limits()
            total = sum(self._size_of(k, v) for k, v in self._entries.items())
            while len(self._entries) > 1 and (len(self._entries) > max_entries or total > max_size):
                old_key, old = self._entries.popitem(last=False)
                total -= self._size_of(old_key, old)
            return kept

    def get_or_compute(self, key: K, compute: Callable[[], V]) -> V:
        """The value kept for `key`, else `compute()` kept: computed by one thread, the others wait for it."""
        hit = self.get(key)
        if hit is not None:
            return hit
        with self._lock:
            key_lock = self._computing.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                hit = self._entries.get(key)
                if hit is not None:
                    self.hits += 1
                    return hit
            try:
                return self.put(key, compute())
            finally:
                with self._lock:
                    self._computing.pop(key, None)

    def info(self) -> dict[str, int]:
        """Entries kept, their size, hits and misses so far."""
        with self._lock:
            return {
                "entries": len(self._entries),
                "size": sum(self._size_of(k, v) for k, v in self._entries.items()),
                "hits": self.hits,
                "misses": self.misses,
            }

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = 0
