"""One collection's run: its deadline, retries and progress reports, and the error texts it quotes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from meshviz.collect.errors import CollectError
from meshviz.collect.kube import Retry
from meshviz.engine.api import (
    ParseError,
)

#: A `progress(step, state, detail)` callback (live collection shows each step as it happens).
Progress = Callable[[str, str, str], None]


class _Run:
    """One collection: deadline, retries, the step log."""

    def __init__(self, progress: Progress | None, timeout: float, retries: int, backoff: float) -> None:
        self.progress = progress
        self.deadline = time.monotonic() + timeout
        self.timeout = timeout
        self.retry = Retry(attempts=max(1, retries + 1), base=backoff, deadline=self.deadline)
        self.steps: list[dict[str, Any]] = []
        self._started: dict[str, float] = {}

    def remaining(self, step: str) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise CollectError("timeout", step, f"the collection did not finish within {self.timeout:g}s")
        return left

    def request_timeout(self, step: str, cap: float = 30.0) -> float:
        return max(0.5, min(self.remaining(step), cap))

    def emit(self, step: str, state: str, detail: str) -> None:
        if state == "started":
            self._started[step] = time.monotonic()
        else:
            began = self._started.get(step, time.monotonic())
            self.steps.append(
                {"step": step, "state": state, "detail": detail, "seconds": round(time.monotonic() - began, 3)}
            )
        if self.progress is not None:
            self.progress(step, state, detail)

    def note_retry(self, step: str) -> Callable[[str], None]:
        return lambda detail: self.emit(step, "retry", detail)


def _first_error(errors: tuple[ParseError, ...] | list[ParseError]) -> str:
    e = errors[0]
    return f"{e.source}:{e.line}:{e.column}: {e.message}: {e.text.strip()[:200]}"


def _body_text(resp: Any) -> str:
    """The text of a raw (`_preload_content=False`) response."""
    data = getattr(resp, "data", resp)
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
