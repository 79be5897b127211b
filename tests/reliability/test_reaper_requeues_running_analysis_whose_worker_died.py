"""A killed worker left its analysis `running` for an hour.  The reaper (beat) requeues a running analysis whose
heartbeat stopped, and fails it with the reason once it has been started MESHVIZ_TASK_MAX_ATTEMPTS times."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.conf import settings
from django.utils import timezone

from meshviz.analyses import services
from meshviz.analyses.models import Analysis
from meshviz.analyses.tasks import analyse, reap_stale_running
from tests.analyses.helpers import POD_IP, REDIRECT_RULES

pytestmark = pytest.mark.django_db


def _running(beat_seconds_ago: float, attempts: int = 1) -> Analysis:
    a = services.create_analysis(iptables=REDIRECT_RULES, pod_ip=POD_IP)
    Analysis.objects.filter(pk=a.pk).update(
        state=Analysis.State.RUNNING,
        attempts=attempts,
        dispatched_at=timezone.now(),
        heartbeat=timezone.now() - timedelta(seconds=beat_seconds_ago),
    )
    return a


def test_stale_running_analysis_is_requeued_and_runs() -> None:
    a = _running(settings.MESHVIZ_STALE_SECONDS + 5)
    with mock.patch.object(analyse, "apply_async", side_effect=lambda args, kwargs, **_: analyse.apply(args, kwargs)):
        assert reap_stale_running() == 1
    a.refresh_from_db()
    assert a.state == Analysis.State.DONE and a.attempts == 2


def test_analysis_with_a_live_heartbeat_is_left_alone() -> None:
    a = _running(1)
    assert reap_stale_running() == 0
    a.refresh_from_db()
    assert a.state == Analysis.State.RUNNING


def test_analysis_whose_worker_keeps_dying_fails_with_the_reason() -> None:
    a = _running(settings.MESHVIZ_STALE_SECONDS + 5, attempts=settings.MESHVIZ_TASK_MAX_ATTEMPTS)
    with mock.patch.object(analyse, "apply_async", side_effect=lambda args, kwargs, **_: analyse.apply(args, kwargs)):
        assert reap_stale_running() == 1
    a.refresh_from_db()
    assert a.state == Analysis.State.FAILED
    assert a.error.startswith("WorkerLost:") and f"{settings.MESHVIZ_TASK_MAX_ATTEMPTS} times" in a.error
