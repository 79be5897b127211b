"""A retryable failure (the API server answering 503 more often than the library's own retries absorb) fails
one attempt of the task, which is retried (Celery autoretry with exponential backoff in a worker; at once in
the embedded eager mode) and then succeeds: one analysis, the retry visible in the steps."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from meshviz.analyses.models import Analysis
from meshviz.clusters.models import Cluster
from tests.kube.fake_apiserver import POD_NAME, REDIRECT_NS, FakeApiServer

from .helpers import collect_through_api


@pytest.mark.django_db
def test_retryable_error_is_retried_then_succeeds(
    user: User, cluster: Cluster, fake_apiserver: FakeApiServer, django_capture_on_commit_callbacks: Any
) -> None:
    # MESHVIZ_COLLECT_RETRIES=1 (conftest): the library reads the pod at most twice per attempt
    fake_apiserver.scenario.fail("GET", rf"/pods/{POD_NAME}$", times=2, status=503)
    api = APIClient()
    api.force_authenticate(user)
    job = collect_through_api(api, django_capture_on_commit_callbacks, cluster, REDIRECT_NS, POD_NAME)
    assert job["state"] == "done", job
    assert job["attempts"] == 2 and job["error"] is None
    retry = next(s for s in job["steps"] if s["step"] == "retry")
    assert "attempt 1 of 2 failed (unreachable" in retry["detail"]
    assert Analysis.objects.count() == 1 and job["analysis"]["state"] == "done"
