"""A real `celery -A meshviz worker` process consumes the analyse task from Redis and stores the verdict.

Uses Redis on 127.0.0.1:6379 (a dedicated DB number, a queue name unique to this run) and the test database
(PostgreSQL: the worker is another process, so it cannot see SQLite's in-memory test database).
Skipped when Redis is unreachable, except with CI=true, where that is a failure; skipped on SQLite.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from meshviz.analyses import services
from meshviz.analyses.models import Analysis

from .helpers import APP_PORT, ENVOY_REDIRECT, POD_IP, REDIRECT_RULES
from .worker import Worker, producer_for, require_worker_prerequisites, wait_for


@pytest.mark.django_db(transaction=True)
def test_worker_process_consumes_the_task_and_stores_the_verdict(tmp_path: Path) -> None:
    require_worker_prerequisites()
    analysis = services.create_analysis(
        iptables=REDIRECT_RULES, pod_ip=POD_IP, envoy_config_dump=ENVOY_REDIRECT, app_ports=[APP_PORT]
    )
    queue = f"meshviz-test-{uuid.uuid4().hex}"
    worker = Worker(queue, tmp_path / "worker.log")

    def finished() -> bool:
        analysis.refresh_from_db()
        return analysis.state in (Analysis.State.DONE, Analysis.State.FAILED) or worker.process.poll() is not None

    try:
        with producer_for(queue) as producer:
            producer.send_task("meshviz.analyses.analyse", args=[analysis.pk], queue=queue)
            wait_for(finished, timeout=60, interval=0.25)
    finally:
        worker.stop()
    output = worker.output()

    assert analysis.state == Analysis.State.DONE, f"state {analysis.state} {analysis.error}\nworker log:\n{output}"
    assert "meshviz.analyses.analyse" in output and "succeeded" in output
    assert analysis.results["stories"][0]["verdict"]["app_peer_ip"] == "127.0.0.6"
    assert analysis.results["fix"]["works"] is True
