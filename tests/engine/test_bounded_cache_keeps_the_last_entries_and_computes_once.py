"""The parse-once caches' shared mechanism (core/bounded.py): the last entries within both limits, least recently
used out first, the newest kept even alone over the size budget; a missing value computed once however many threads
ask for it at the same time."""

from __future__ import annotations

import threading
import time

import pytest

from meshviz.engine.core.bounded import BoundedCache


def test_the_least_recently_used_entry_goes_first_within_both_limits() -> None:
    limits = [3, 100]
    cache: BoundedCache[str, int] = BoundedCache(lambda: (limits[0], limits[1]), lambda k, _v: len(k))
    for key in ("a", "bb", "ccc"):
        cache.put(key, len(key))
    assert cache.get("a") == 1  # now the most recent
    cache.put("dddd", 4)
    assert cache.get("bb") is None and cache.get("a") == 1
    limits[1] = 5  # a limit read on the next insertion
    cache.put("e" * 20, 20)
    assert cache.info() == {"entries": 1, "size": 20, "hits": 2, "misses": 5}


def test_a_missing_value_is_computed_once_for_threads_asking_together() -> None:
    cache: BoundedCache[str, int] = BoundedCache(lambda: (8, 1 << 20), lambda k, _v: len(k))
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        time.sleep(0.05)
        return 42

    got: list[int] = []
    threads = [threading.Thread(target=lambda: got.append(cache.get_or_compute("k", compute))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert got == [42] * 6 and len(calls) == 1


def test_a_failing_computation_is_not_kept_and_is_tried_again() -> None:
    cache: BoundedCache[str, int] = BoundedCache(lambda: (8, 1 << 20), lambda k, _v: len(k))

    def boom() -> int:
        raise ValueError("bad text")

    for _ in range(2):
        with pytest.raises(ValueError):
            cache.get_or_compute("k", boom)
    assert cache.info()["entries"] == 0
    assert cache.get_or_compute("k", lambda: 7) == 7
