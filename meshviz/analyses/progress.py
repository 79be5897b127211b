"""Progress of a running analysis (issue 15): what it is doing, step N of M, kept in Django's cache (CACHE_URL;
shared by every process when that is Redis) and shown by the analysis page and the API while it runs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.core.cache import cache

logger = logging.getLogger(__name__)

PREFIX = "meshviz:progress:"
#: an hour: a run never takes longer (CELERY_TASK_TIME_LIMIT); the entry only bounds the memory
SECONDS = 3600


def key(pk: int) -> str:
    return f"{PREFIX}{pk}"


def report(pk: int, step: int, steps: int, doing: str) -> None:
    """Record that analysis `pk` is at `step` of `steps`, doing `doing` (never raises: progress is a courtesy)."""
    try:
        cache.set(key(pk), {"step": step, "steps": steps, "doing": doing}, SECONDS)
    except Exception:  # the cache server down must not fail an analysis
        logger.warning("progress of analysis %s could not be recorded", pk, exc_info=True)


def reporter(pk: int) -> Callable[[int, int, str], None]:
    def call(step: int, steps: int, doing: str) -> None:
        report(pk, step, steps, doing)

    return call


def of(pk: int) -> dict[str, Any] | None:
    """The last progress recorded for analysis `pk`, or None."""
    try:
        value = cache.get(key(pk))
    except Exception:
        return None
    return value if isinstance(value, dict) else None


def clear(pk: int) -> None:
    try:
        cache.delete(key(pk))
    except Exception:
        logger.warning("progress of analysis %s could not be cleared", pk, exc_info=True)
