"""The parse-once cache (meshviz.web.parsed) keeps a few node-sized pods or many small ones, and a value asked for by
several threads at once (a threaded server) is computed once."""

from __future__ import annotations

import threading
import time

from meshviz.web.parsed import _LRU


def test_entries_over_the_budget_are_evicted_oldest_first() -> None:
    lru = _LRU(size=16, budget=100)
    for name in ("a", "b", "c"):
        lru.get(name, lambda n=name: n.upper(), weight=40)  # type: ignore[misc]
    assert list(lru.items) == ["b", "c"]  # 120 > 100: "a" went
    lru.get("b", lambda: "recomputed", weight=40)  # a hit keeps it and makes it the newest
    lru.get("d", lambda: "D", weight=40)
    assert list(lru.items) == ["b", "d"] and lru.items["b"] == "B"


def test_one_entry_over_the_budget_stays_until_the_next() -> None:
    lru = _LRU(size=16, budget=10)
    assert lru.get("huge", lambda: 1, weight=1000) == 1
    assert list(lru.items) == ["huge"]
    lru.get("small", lambda: 2, weight=1)
    assert list(lru.items) == ["small"]


def test_the_number_of_entries_is_bounded_too() -> None:
    lru = _LRU(size=3)
    for i in range(10):
        lru.get(i, lambda i=i: i)  # type: ignore[misc]
    assert list(lru.items) == [7, 8, 9]


def test_threads_asking_at_once_share_one_computation() -> None:
    lru = _LRU(size=4)
    calls: list[int] = []
    results: list[str] = []
    start = threading.Barrier(8)

    def compute() -> str:
        calls.append(1)
        time.sleep(0.05)  # long enough for the other threads to ask meanwhile
        return "parsed"

    def ask() -> None:
        start.wait()
        results.append(lru.get("evidence", compute))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["parsed"] * 8 and len(calls) == 1
    assert (lru.hits, lru.misses) == (7, 1)
