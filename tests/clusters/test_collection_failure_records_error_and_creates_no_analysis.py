"""A collection that fails records the step, kind and message on the job - shown by the API and the page -
and creates no analysis: a pod that is gone, a pod without a sidecar, a cluster that keeps failing (retried,
then given up), and collected evidence that cannot be analysed (no pod IP)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from meshviz.analyses.models import Analysis
from meshviz.clusters.models import Cluster, CollectionJob
from tests.kube.fake_apiserver import POD_NAME, REDIRECT_NS, FakeApiServer

from .helpers import collect_through_api


def _collect(user: User, cluster: Cluster, capture: Any, namespace: str, pod: str) -> dict[str, Any]:
    api = APIClient()
    api.force_authenticate(user)
    job = collect_through_api(api, capture, cluster, namespace, pod)
    assert job["state"] == "failed", job
    assert job["analysis"] is None and job["provenance"] == ""
    assert Analysis.objects.count() == 0
    return job


@pytest.mark.django_db
def test_pod_gone_is_not_found_and_not_retried(
    user: User, cluster: Cluster, fake_apiserver: FakeApiServer, django_capture_on_commit_callbacks: Any
) -> None:
    fake_apiserver.scenario.gone.add((REDIRECT_NS, POD_NAME))
    job = _collect(user, cluster, django_capture_on_commit_callbacks, REDIRECT_NS, POD_NAME)
    assert job["error"]["kind"] == "not_found" and job["error"]["step"] == "pod"
    assert job["error"]["retryable"] is False and job["attempts"] == 1
    assert f"{REDIRECT_NS}/{POD_NAME}" in job["error"]["message"]
    assert job["steps"][0]["step"] == "pod" and job["steps"][0]["state"] == "failed"

    client = Client()
    client.force_login(user)
    page = client.get(f"/collections/{job['id']}/").content.decode()
    assert "not_found" in page and "No analysis was created." in page


@pytest.mark.django_db
def test_pod_without_sidecar_is_no_sidecar(
    user: User, cluster: Cluster, django_capture_on_commit_callbacks: Any
) -> None:
    job = _collect(user, cluster, django_capture_on_commit_callbacks, REDIRECT_NS, "redis-0")
    assert job["error"]["kind"] == "no_sidecar" and "no Istio sidecar" in job["error"]["message"]


@pytest.mark.django_db
def test_a_cluster_that_keeps_failing_is_retried_then_given_up(
    user: User, cluster: Cluster, fake_apiserver: FakeApiServer, django_capture_on_commit_callbacks: Any
) -> None:
    fake_apiserver.scenario.fail("GET", rf"/pods/{POD_NAME}$", times=100, status=503)
    job = _collect(user, cluster, django_capture_on_commit_callbacks, REDIRECT_NS, POD_NAME)
    assert job["error"]["kind"] == "unreachable" and job["error"]["retryable"] is True
    # MESHVIZ_COLLECT_TASK_RETRIES=1 (tests/clusters/conftest.py): two task attempts, then it gave up
    assert job["attempts"] == 2 and "gave up after 2 attempts" in job["error"]["message"]
    retry_steps = [s for s in job["steps"] if s["step"] == "retry"]
    assert retry_steps and "attempt 1 of 2 failed (unreachable" in retry_steps[0]["detail"]
    # MESHVIZ_COLLECT_RETRIES=1: each attempt tried the pod twice (the library's own backoff), so 4 reads
    assert len(fake_apiserver.requests_to("GET", rf"/pods/{POD_NAME}$")) == 4


@pytest.mark.django_db
def test_evidence_that_cannot_be_analysed_creates_nothing(
    user: User, cluster: Cluster, fake_apiserver: FakeApiServer, django_capture_on_commit_callbacks: Any
) -> None:
    status = fake_apiserver.scenario.pod(REDIRECT_NS, POD_NAME)["status"]
    status.pop("podIP", None)
    status.pop("podIPs", None)
    job = _collect(user, cluster, django_capture_on_commit_callbacks, REDIRECT_NS, POD_NAME)
    assert job["error"]["kind"] == "bad_output" and job["error"]["step"] == "validate"
    assert job["error"]["errors"][0]["source"] == "pod_ip"
    assert "no analysis was created" in job["error"]["message"]
    assert CollectionJob.objects.get(pk=job["id"]).analysis is None
