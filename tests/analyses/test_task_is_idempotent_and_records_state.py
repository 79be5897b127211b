"""The analyse task: a no-op on current results unless forced, failed with the error text.

Redelivery when the worker dies is proven by test_task_survives_a_killed_worker.py (a real worker, killed), and the
retries on transient database errors by tests/reliability/test_only_transient_database_errors_are_retried.py."""

from __future__ import annotations

from unittest import mock

import pytest

from meshviz.analyses import services
from meshviz.analyses.models import ENGINE_VERSION, Analysis
from meshviz.analyses.tasks import analyse

from .helpers import POD_IP, REDIRECT_RULES

pytestmark = pytest.mark.django_db


def test_done_analysis_is_not_recomputed_unless_forced(done_analysis: Analysis) -> None:
    with mock.patch.object(services, "compute_results", wraps=services.compute_results) as compute:
        assert analyse.apply(args=[done_analysis.pk]).get() == "unchanged"
        assert compute.call_count == 0
        assert analyse.apply(args=[done_analysis.pk], kwargs={"force": True}).get() == "done"
        assert compute.call_count == 1


def test_results_of_an_older_engine_version_are_recomputed(done_analysis: Analysis) -> None:
    Analysis.objects.filter(pk=done_analysis.pk).update(results={**done_analysis.results, "engine_version": "0"})
    assert analyse.apply(args=[done_analysis.pk]).get() == "done"
    done_analysis.refresh_from_db()
    assert done_analysis.results["engine_version"] == ENGINE_VERSION


def test_state_goes_queued_running_done() -> None:
    a = services.create_analysis(iptables=REDIRECT_RULES, pod_ip=POD_IP)
    assert a.state == "queued"
    seen: list[str] = []
    real = services.compute_results

    def spy(analysis: Analysis) -> dict[str, object]:
        seen.append(Analysis.objects.get(pk=analysis.pk).state)
        return real(analysis)

    with mock.patch.object(services, "compute_results", side_effect=spy):
        assert analyse.apply(args=[a.pk]).get() == "done"
    a.refresh_from_db()
    assert seen == ["running"] and a.state == "done" and a.error == ""


def test_engine_failure_is_stored_as_failed_with_the_error() -> None:
    a = services.create_analysis(iptables=REDIRECT_RULES, pod_ip=POD_IP)
    with mock.patch.object(services, "compute_results", side_effect=ValueError("no route to 8083")):
        assert analyse.apply(args=[a.pk]).get() == "failed"
    a.refresh_from_db()
    assert a.state == "failed" and a.error == "ValueError: no route to 8083"
    assert a.results is None


def test_missing_analysis_is_not_an_error() -> None:
    assert analyse.apply(args=[987654321]).get() == "missing"
