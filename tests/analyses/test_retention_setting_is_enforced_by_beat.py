"""MESHVIZ_RETENTION_DAYS: beat deletes analyses older than that (bundled examples excepted); 0 keeps them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from meshviz.analyses import services
from meshviz.analyses.models import Analysis
from meshviz.analyses.tasks import apply_retention
from meshviz.celery import app

from .helpers import POD_IP, REDIRECT_RULES

pytestmark = pytest.mark.django_db


def _aged(days: int, origin: str = Analysis.Origin.UPLOAD) -> Analysis:
    a = services.create_analysis(iptables=REDIRECT_RULES, pod_ip=POD_IP, origin=origin)
    Analysis.objects.filter(pk=a.pk).update(created=timezone.now() - timedelta(days=days))
    return a


@override_settings(MESHVIZ_RETENTION_DAYS=30)
def test_old_analyses_are_deleted_recent_ones_and_examples_kept() -> None:
    old, recent, example = _aged(31), _aged(29), _aged(400, Analysis.Origin.EXAMPLE)
    assert apply_retention() == 1
    assert set(Analysis.objects.values_list("pk", flat=True)) == {recent.pk, example.pk}
    assert not Analysis.objects.filter(pk=old.pk).exists()


@override_settings(MESHVIZ_RETENTION_DAYS=0)
def test_zero_keeps_everything() -> None:
    _aged(4000)
    assert apply_retention() == 0 and Analysis.objects.count() == 1


def test_beat_runs_retention() -> None:
    tasks = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert {
        "meshviz.analyses.apply_retention",
        "meshviz.analyses.redispatch_queued",
        "meshviz.analyses.reap_stale_running",
    } <= tasks
