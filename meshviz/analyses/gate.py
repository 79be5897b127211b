"""One analysis at a time, first come first served, among the threads of a process that runs tasks in-process.

The embedded default (no broker) analyses an upload in the request's own thread.  Ten uploads at once then
interleave under the GIL, each taking ten times its own CPU and their order left to the GIL's switching, so some
wait far longer than others.  Queued here instead, in arrival order, each runs at full speed when its turn comes:
the same throughput, a tail close to the mean.  Node-sized evidence, analysed in a background thread, does not queue
here (it would hold every small upload behind it for seconds).
"""

from __future__ import annotations

import threading
from collections import deque
from types import TracebackType


class FifoGate:
    """A lock granted in the order it was asked for (threading.Lock promises no order)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[threading.Event] = deque()

    def __enter__(self) -> FifoGate:
        turn = threading.Event()
        with self._lock:
            self._queue.append(turn)
            if self._queue[0] is turn:
                turn.set()
        try:
            turn.wait()
        except BaseException:  # interrupted while waiting: give the turn up, or on if it had just come
            self._leave(turn)
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._leave(self._queue[0])

    def _leave(self, turn: threading.Event) -> None:
        with self._lock:
            head = self._queue[0] is turn
            self._queue.remove(turn)
            if head and self._queue:
                self._queue[0].set()

    def waiting(self) -> int:
        """How many threads hold or wait for the gate."""
        with self._lock:
            return len(self._queue)


#: the gate of in-process analyses (meshviz.analyses.tasks.analyse, run eagerly in a request's thread)
IN_PROCESS = FifoGate()
