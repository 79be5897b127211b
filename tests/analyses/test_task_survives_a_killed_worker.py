"""A worker killed in the middle of an analysis loses nothing: the task runs again and completes.

Two ways a worker dies: its pool process is killed (OOM killer, segfault) - the surviving main process
requeues the unacknowledged task at once (acks_late + reject_on_worker_lost); or the whole worker is killed
(kill -9, a lost node) - the task stays unacknowledged in Redis and another worker gets it after the
broker's visibility timeout (CELERY_VISIBILITY_TIMEOUT, shortened here to a few seconds).

The analysis simulates many connections so it runs for seconds: long enough to be killed mid-run.
"""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import pytest

from meshviz.analyses import services
from meshviz.analyses.models import Analysis

from .helpers import APP_PORT, ENVOY_REDIRECT, POD_IP, REDIRECT_RULES
from .worker import Worker, producer_for, require_worker_prerequisites, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

#: ~14 ms of simulation each: a few seconds of work
CONNECTIONS = 300
VISIBILITY_TIMEOUT = 3


def slow_analysis() -> Analysis:
    connections = [
        {"direction": "inbound", "client": f"10.1.{i // 250}.{i % 250 + 1}:40000", "port": APP_PORT}
        for i in range(CONNECTIONS)
    ]
    return services.create_analysis(
        iptables=REDIRECT_RULES,
        pod_ip=POD_IP,
        envoy_config_dump=ENVOY_REDIRECT,
        app_ports=[APP_PORT],
        connections=connections,
    )


def state_of(analysis: Analysis) -> str:
    analysis.refresh_from_db(fields=["state"])
    return analysis.state


def assert_complete(analysis: Analysis, log: str) -> None:
    analysis.refresh_from_db()
    assert analysis.state == Analysis.State.DONE, f"{analysis.state} {analysis.error}\n{log}"
    assert analysis.results_are_current()
    stories = analysis.results["stories"]
    assert len(stories) == CONNECTIONS
    assert [s["connection"] for s in stories] == analysis.connections
    assert {s["verdict"]["app_peer_ip"] for s in stories} == {"127.0.0.6"}


def test_killed_pool_process_the_task_is_requeued_and_completes(tmp_path: Path) -> None:
    require_worker_prerequisites()
    analysis = slow_analysis()
    queue = f"meshviz-test-{uuid.uuid4().hex}"
    worker = Worker(queue, tmp_path / "worker.log", pool="prefork")
    try:
        with producer_for(queue) as producer:
            producer.send_task("meshviz.analyses.analyse", args=[analysis.pk], queue=queue)
            assert wait_for(lambda: state_of(analysis) == Analysis.State.RUNNING, 60), worker.output()
            children = worker.pool_children()
            assert len(children) == 1, children
            os.kill(children[0], signal.SIGKILL)
            # nothing was stored by the killed run
            analysis.refresh_from_db()
            assert analysis.results is None
            wait_for(lambda: state_of(analysis) in (Analysis.State.DONE, Analysis.State.FAILED), 120, 0.25)
    finally:
        worker.stop()
    log = worker.output()

    assert "SIGKILL" in log and "WorkerLostError" in log, log
    assert_complete(analysis, log)


def test_killed_worker_the_task_is_redelivered_to_another_worker(tmp_path: Path) -> None:
    require_worker_prerequisites()
    analysis = slow_analysis()
    queue = f"meshviz-test-{uuid.uuid4().hex}"
    env = {"CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT)}
    first = Worker(queue, tmp_path / "first.log", env=env)
    second: Worker | None = None
    try:
        with producer_for(queue) as producer:
            producer.send_task("meshviz.analyses.analyse", args=[analysis.pk], queue=queue)
            assert wait_for(lambda: state_of(analysis) == Analysis.State.RUNNING, 60), first.output()
            first.process.send_signal(signal.SIGKILL)
            first.process.wait(timeout=10)
            analysis.refresh_from_db()
            assert analysis.state == Analysis.State.RUNNING and analysis.results is None

            second = Worker(queue, tmp_path / "second.log", env=env)
            wait_for(lambda: state_of(analysis) in (Analysis.State.DONE, Analysis.State.FAILED), 120, 0.25)
    finally:
        first.stop()
        if second is not None:
            second.stop()
    assert second is not None
    log = second.output()

    assert "meshviz.analyses.analyse" in log and "succeeded" in log, log
    assert_complete(analysis, log)
