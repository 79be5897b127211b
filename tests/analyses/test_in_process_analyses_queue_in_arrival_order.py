"""Without a broker, uploads are analysed in their requests' threads: one at a time, in arrival order (the gate), so
ten concurrent uploads no longer interleave under the GIL with some waiting far longer than others; node-sized
evidence analysed in a background thread does not queue behind them, nor they behind it."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from meshviz.analyses import gate, tasks
from meshviz.analyses.gate import FifoGate
from meshviz.analyses.models import Analysis

from .helpers import evidence_payload


def _wait_until(condition: Any, seconds: float = 10) -> None:
    end = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


def test_the_gate_is_granted_in_the_order_it_was_asked_for() -> None:
    g = FifoGate()
    order: list[int] = []
    g.__enter__()  # held: everyone below queues
    threads = []
    for n in range(6):

        def run(n: int = n) -> None:
            with g:
                order.append(n)

        t = threading.Thread(target=run)
        t.start()
        threads.append(t)
        _wait_until(lambda n=n: g.waiting() == n + 2)  # the holder and n + 1 waiters: arrival order is fixed
    g.__exit__(None, None, None)
    for t in threads:
        t.join(timeout=10)
    assert order == list(range(6))
    assert g.waiting() == 0


def test_a_failing_holder_passes_the_gate_on() -> None:
    g = FifoGate()
    with pytest.raises(RuntimeError), g:
        raise RuntimeError("the analysis failed")
    entered = threading.Event()

    def run() -> None:
        with g:
            entered.set()

    t = threading.Thread(target=run)
    t.start()
    assert entered.wait(timeout=10)
    t.join(timeout=10)


class _Recording(FifoGate):
    def __init__(self) -> None:
        super().__init__()
        self.entries = 0

    def __enter__(self) -> FifoGate:
        self.entries += 1
        return super().__enter__()


@pytest.mark.django_db(transaction=True)
def test_an_upload_analysed_in_its_request_goes_through_the_gate(api: APIClient, monkeypatch: Any) -> None:
    recording = _Recording()
    monkeypatch.setattr(gate, "IN_PROCESS", recording)
    response = api.post("/api/v1/analyses/", evidence_payload(), format="json")
    assert response.status_code == 201 and response.json()["state"] == "done"
    assert recording.entries == 1


@pytest.mark.django_db(transaction=True)
@override_settings(MESHVIZ_BACKGROUND_BYTES=1000)
def test_node_sized_evidence_in_the_background_does_not_queue_at_the_gate(api: APIClient, monkeypatch: Any) -> None:
    held = FifoGate()
    monkeypatch.setattr(gate, "IN_PROCESS", held)
    with held:  # an upload's analysis holds the gate the whole time
        response = api.post("/api/v1/analyses/", evidence_payload(), format="json")
        assert response.status_code == 201
        for thread in [t for t in threading.enumerate() if t.name.startswith("analyse-")]:
            thread.join(timeout=120)
        analysis = Analysis.objects.get(slug=response.json()["slug"])
        assert analysis.state == Analysis.State.DONE
    assert tasks._in_background.active is False  # the flag is the background thread's own
