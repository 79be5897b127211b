"""A burst that straddles the end of a rate-limit window is still limited (a fixed window let it through twice
over, and made the login limit's test fail whenever its six attempts crossed a minute)."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from meshviz.web import ratelimit


@pytest.fixture(autouse=True)
def clear_cache() -> None:
    cache.clear()


def test_a_burst_across_the_window_end_is_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1_000_019.5]  # 0.5 s before a 60 s window ends
    monkeypatch.setattr(ratelimit.time, "time", lambda: clock[0])
    assert [ratelimit.hit("test", "alice", "5/min") for _ in range(5)] == [None] * 5
    clock[0] += 1.0  # the next window has begun
    wait = ratelimit.hit("test", "alice", "5/min")
    assert wait is not None and 1 <= wait <= 60


def test_the_previous_windows_requests_fade_out(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1_000_019.5]
    monkeypatch.setattr(ratelimit.time, "time", lambda: clock[0])
    for _ in range(5):
        ratelimit.hit("test", "bob", "5/min")
    clock[0] += 55.0  # 54.5 s into the next window: 9% of the old burst still counts
    assert ratelimit.hit("test", "bob", "5/min") is None
    assert ratelimit.hit("test", "someone-else", "5/min") is None
