"""A real `celery -A meshviz worker` process consumes the analyse task from Redis and stores the verdict.

Uses Redis on 127.0.0.1:6379 (a dedicated DB number, a queue name unique to this run) and the test database
(PostgreSQL: the worker is another process, so it cannot see SQLite's in-memory test database).
Skipped when Redis is unreachable, except with CI=true, where that is a failure; skipped on SQLite.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from celery import Celery
from django.db import connection

from meshviz.analyses import services
from meshviz.analyses.models import Analysis

from .helpers import APP_PORT, ENVOY_REDIRECT, POD_IP, REDIRECT_RULES

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REDIS_DB = 13  # dedicated to this test
BROKER_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"
REPO = Path(__file__).resolve().parents[2]
CELERY = Path(sys.executable).with_name("celery")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true: {reason}")
    pytest.skip(reason)


def _redis_reachable() -> bool:
    try:
        socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=2).close()
    except OSError:
        return False
    return True


def _database_url() -> str:
    s = connection.settings_dict
    user = s.get("USER") or "postgres"
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}/{s['NAME']}"


@pytest.mark.django_db(transaction=True)
def test_worker_process_consumes_the_task_and_stores_the_verdict(tmp_path: Path) -> None:
    if not _redis_reachable():
        _unavailable(f"Redis is not reachable on {REDIS_HOST}:{REDIS_PORT}")
    if connection.vendor != "postgresql":
        # Not a CI failure: tests/test_postgres_database.py already insists on PostgreSQL there.
        pytest.skip("the worker is another process and needs a shared database: set DATABASE_URL to PostgreSQL")

    analysis = services.create_analysis(
        iptables=REDIRECT_RULES, pod_ip=POD_IP, envoy_config_dump=ENVOY_REDIRECT, app_ports=[APP_PORT]
    )
    queue = f"meshviz-test-{uuid.uuid4().hex}"
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": BROKER_URL,
        "CELERY_RESULT_BACKEND": "",
        "DJANGO_SETTINGS_MODULE": "meshviz.settings",
        "PYTHONPATH": str(REPO),
    }
    log = (tmp_path / "worker.log").open("w+")
    worker_args = ["worker", "-Q", queue, "--pool", "solo", "--concurrency", "1", "--loglevel", "INFO"]
    quiet = ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    worker = subprocess.Popen(
        [str(CELERY), "-A", "meshviz", *worker_args, *quiet],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    producer = Celery("meshviz-test-producer", broker=BROKER_URL)
    try:
        producer.send_task("meshviz.analyses.analyse", args=[analysis.pk], queue=queue)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and worker.poll() is None:
            analysis.refresh_from_db()
            if analysis.state in (Analysis.State.DONE, Analysis.State.FAILED):
                break
            time.sleep(0.25)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=10)
        with producer.connection_for_write() as conn:
            conn.default_channel.queue_delete(queue)
        producer.close()
        log.seek(0)
        output = log.read()
        log.close()

    assert analysis.state == Analysis.State.DONE, f"state {analysis.state} {analysis.error}\nworker log:\n{output}"
    assert "meshviz.analyses.analyse" in output and "succeeded" in output
    assert analysis.results["stories"][0]["verdict"]["app_peer_ip"] == "127.0.0.6"
    assert analysis.results["fix"]["works"] is True
