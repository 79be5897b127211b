"""Celery has soft and hard time limits, a task limit per worker process and a memory limit; a task past the soft
limit or out of memory fails with the reason."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from meshviz.analyses import services
from meshviz.analyses.models import Analysis
from meshviz.analyses.tasks import analyse
from meshviz.celery import app
from tests.analyses.helpers import POD_IP, REDIRECT_RULES

ROOT = Path(__file__).resolve().parents[2]


def test_worker_configuration_bounds_every_task() -> None:
    assert 0 < app.conf.task_soft_time_limit < app.conf.task_time_limit
    assert app.conf.task_soft_time_limit == settings.CELERY_TASK_SOFT_TIME_LIMIT
    assert app.conf.worker_max_tasks_per_child and app.conf.worker_max_tasks_per_child > 0
    assert app.conf.worker_max_memory_per_child and app.conf.worker_max_memory_per_child > 0


@pytest.mark.django_db
def test_soft_time_limit_fails_the_analysis_with_the_reason() -> None:
    a = services.create_analysis(iptables=REDIRECT_RULES, pod_ip=POD_IP)
    with mock.patch.object(services, "compute_results", side_effect=SoftTimeLimitExceeded()):
        assert analyse.apply(args=[a.pk]).get() == "failed"
    a.refresh_from_db()
    assert a.state == Analysis.State.FAILED
    assert a.error.startswith("TimeLimit:") and "CELERY_TASK_SOFT_TIME_LIMIT" in a.error


@pytest.mark.django_db
def test_out_of_memory_fails_the_analysis_with_the_reason() -> None:
    a = services.create_analysis(iptables=REDIRECT_RULES, pod_ip=POD_IP)
    with mock.patch.object(services, "compute_results", side_effect=MemoryError()):
        assert analyse.apply(args=[a.pk]).get() == "failed"
    a.refresh_from_db()
    assert a.error.startswith("MemoryLimit:") and "MESHVIZ_WORKER_MEMORY_MB" in a.error


def test_worker_processes_get_an_address_space_limit() -> None:
    code = (
        "import django, resource; django.setup();"
        "from meshviz.celery import limit_worker_memory; limit_worker_memory();"
        "print(resource.getrlimit(resource.RLIMIT_AS)[0])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"DJANGO_SETTINGS_MODULE": "meshviz.settings", "MESHVIZ_WORKER_MEMORY_MB": "768", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert int(out.stdout.split()[-1]) == 768 * 1024 * 1024
