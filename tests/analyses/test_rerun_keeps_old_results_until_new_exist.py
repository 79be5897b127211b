"""Re-running (a connection added) keeps the previous results visible until the new ones are stored."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
from rest_framework.test import APIClient

from meshviz.analyses import services
from meshviz.analyses.models import Analysis
from meshviz.analyses.tasks import analyse

pytestmark = pytest.mark.django_db


def test_old_results_stay_while_queued_and_are_replaced_when_new_exist(
    api: APIClient, done_analysis: Analysis, django_capture_on_commit_callbacks: Any
) -> None:
    old = done_analysis.results
    url = f"/api/v1/analyses/{done_analysis.slug}/"
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = api.post(url + "connections/", {"client": "192.0.2.9:41000", "port": 8083}, format="json")
    assert response.status_code == 202
    assert len(queued) == 1

    during = api.get(url).json()
    assert during["state"] == "queued"
    assert len(during["verdicts"]) == 2, "the previous verdicts are still served"
    assert "previous result" in during["summary"] and "127.0.0.6" in during["summary"]
    assert api.get(url + "fix/").json()["fix"] == old["fix"]

    queued[0]()  # the worker picks the task up
    after = api.get(url).json()
    assert after["state"] == "done"
    assert len(after["verdicts"]) == 3
    assert after["verdicts"][2]["connection"]["client"] == "192.0.2.9:41000"


def test_a_failed_rerun_keeps_the_previous_results(done_analysis: Analysis) -> None:
    old = done_analysis.results
    services.add_connection(done_analysis, {"direction": "inbound", "client": "192.0.2.9:41000", "port": 8083})
    with mock.patch.object(services, "compute_results", side_effect=RuntimeError("engine exploded")):
        assert analyse.apply(args=[done_analysis.pk]).get() == "failed"
    done_analysis.refresh_from_db()
    assert done_analysis.state == "failed"
    assert done_analysis.error == "RuntimeError: engine exploded"
    assert done_analysis.results == old


def test_results_for_an_older_revision_are_not_stored(done_analysis: Analysis) -> None:
    stale = Analysis.objects.get(pk=done_analysis.pk)
    services.add_connection(done_analysis, {"direction": "inbound", "client": "192.0.2.9:41000", "port": 8083})
    services.run_analysis(stale)  # computed from the inputs before the connection was added
    done_analysis.refresh_from_db()
    assert done_analysis.state == "queued"
    assert len(done_analysis.results["stories"]) == 2


def test_the_stored_analysis_comes_back_whole(done_analysis: Analysis) -> None:
    """run_analysis reads back only the revision to compare, but returns the whole analysis: a caller reading any
    field (a page, an async test) never triggers a lazy database read."""
    stored = services.run_analysis(Analysis.objects.get(pk=done_analysis.pk))
    assert stored.get_deferred_fields() == set()
    assert stored.state == "done" and stored.slug == done_analysis.slug and stored.results["stories"]
    stale = Analysis.objects.get(pk=done_analysis.pk)
    services.add_connection(done_analysis, {"direction": "inbound", "client": "192.0.2.9:41000", "port": 8083})
    assert services.run_analysis(stale).get_deferred_fields() == set()
