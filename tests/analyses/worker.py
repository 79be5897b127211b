"""Running real `celery -A meshviz worker` processes against the Redis on 127.0.0.1 and the test database.

The worker is another process, so it needs a database both can see: PostgreSQL (DATABASE_URL), never the
SQLite test database. `require_worker_prerequisites` skips without Redis or PostgreSQL (with CI=true a
missing Redis is a failure; tests/test_postgres_database.py already insists on PostgreSQL there).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pytest
from celery import Celery
from django.db import connection

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REDIS_DB = 13  # dedicated to these tests
BROKER_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"
REPO = Path(__file__).resolve().parents[2]
CELERY = Path(sys.executable).with_name("celery")
QUIET = ["--without-gossip", "--without-mingle", "--without-heartbeat"]


def require_worker_prerequisites() -> None:
    try:
        socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=2).close()
    except OSError:
        reason = f"Redis is not reachable on {REDIS_HOST}:{REDIS_PORT}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {reason}")
        pytest.skip(reason)
    if connection.vendor != "postgresql":
        pytest.skip("the worker is another process and needs a shared database: set DATABASE_URL to PostgreSQL")


def database_url() -> str:
    s = connection.settings_dict
    user = s.get("USER") or "postgres"
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}/{s['NAME']}"


class Worker:
    """One worker process consuming `queue`; its output goes to `log`."""

    def __init__(self, queue: str, log_path: Path, *, pool: str = "solo", env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        self._log: IO[str] = log_path.open("a+")
        full_env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": BROKER_URL,
            "CELERY_RESULT_BACKEND": "",
            "DJANGO_SETTINGS_MODULE": "meshviz.settings",
            "PYTHONPATH": str(REPO),
            **(env or {}),
        }
        args = ["worker", "-Q", queue, "--pool", pool, "--concurrency", "1", "--loglevel", "INFO", *QUIET]
        self.process = subprocess.Popen(
            [str(CELERY), "-A", "meshviz", *args], cwd=REPO, env=full_env, stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def pool_children(self) -> list[int]:
        """PIDs of the prefork pool's processes (the worker's children)."""
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()

    def output(self) -> str:
        return self.log_path.read_text()


@contextmanager
def producer_for(queue: str) -> Iterator[Celery]:
    """A Celery client sending to `queue`; the queue is deleted afterwards."""
    # not the current app: shared tasks (meshviz.analyses.tasks.analyse) must keep using meshviz's own app, eager in
    # the test process, after this producer is gone
    producer = Celery("meshviz-test-producer", broker=BROKER_URL, set_as_current=False)
    try:
        yield producer
    finally:
        with producer.connection_for_write() as conn:
            conn.default_channel.queue_delete(queue)
        producer.close()


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()
