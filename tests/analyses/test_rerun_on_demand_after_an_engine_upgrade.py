"""Results computed by an older engine are flagged; a re-run on demand replaces them and keeps them until then."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from meshviz.analyses.models import ENGINE_VERSION, Analysis

pytestmark = pytest.mark.django_db


def age(analysis: Analysis) -> dict[str, Any]:
    """Pretend the stored results come from an older engine version (as after an upgrade)."""
    old = {**analysis.results, "engine_version": "0", "summary": "an old summary"}
    Analysis.objects.filter(pk=analysis.pk).update(results=old, engine_version="0")
    return old


def test_api_rerun_keeps_old_results_until_the_new_engine_answers(
    api: APIClient, done_analysis: Analysis, django_capture_on_commit_callbacks: Any
) -> None:
    age(done_analysis)
    url = f"/api/v1/analyses/{done_analysis.slug}/"

    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = api.post(url + "rerun/")
    assert response.status_code == 202
    during = api.get(url).json()
    assert during["state"] == "queued" and "an old summary" in during["summary"]

    queued[0]()
    after = api.get(url).json()
    assert after["state"] == "done"
    assert after["engine_version"] == ENGINE_VERSION
    assert "an old summary" not in after["summary"] and "127.0.0.6" in after["summary"]


def test_page_flags_stale_results_and_its_button_reruns(
    user: User, done_analysis: Analysis, django_capture_on_commit_callbacks: Any
) -> None:
    age(done_analysis)
    browser = Client()
    browser.force_login(user)
    assert "These results come from an older engine" in browser.get(done_analysis.permalink_path).content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post(f"/a/{done_analysis.slug}/rerun/")

    assert response.status_code == 302
    done_analysis.refresh_from_db()
    assert done_analysis.results_are_current()
    assert "These results come from an older engine" not in browser.get(done_analysis.permalink_path).content.decode()
