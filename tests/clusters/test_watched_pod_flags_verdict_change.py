"""A watched pod is re-collected by the beat task when due; when its verdict differs from the previous
collection's (here: the TPROXY pod's `fwmark 1337 lookup 133` policy rule disappears, so replies escape via
eth0), the watched pod is flagged with the before/after verdicts and a diff link, until acknowledged."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from meshviz.celery import app
from meshviz.clusters.models import Cluster, CollectionJob, WatchedPod
from meshviz.clusters.tasks import recollect_watched_pods
from tests.kube.fake_apiserver import POD_NAME, TPROXY_NS, FakeApiServer, ip_rule_text


@pytest.mark.django_db
def test_watched_pod_flags_verdict_change(
    user: User, cluster: Cluster, fake_apiserver: FakeApiServer, django_capture_on_commit_callbacks: Any
) -> None:
    # the beat schedule runs the task that does this
    entry = settings.CELERY_BEAT_SCHEDULE["meshviz-recollect-watched-pods"]
    assert entry["task"] == recollect_watched_pods.name and entry["task"] in app.tasks

    api = APIClient()
    api.force_authenticate(user)
    response = api.post(
        "/api/v1/watched-pods/",
        {"cluster": cluster.pk, "namespace": TPROXY_NS, "pod": POD_NAME, "interval_minutes": 30},
        format="json",
    )
    assert response.status_code == 201, response.content
    watched_url = response.json()["url"]

    with django_capture_on_commit_callbacks(execute=True):
        assert recollect_watched_pods.delay().get() == {"compared": 0, "started": 1}
    first = CollectionJob.objects.get()
    assert first.state == "done" and first.analysis is not None and first.previous_analysis is None
    before = first.analysis.results["stories"][0]
    assert before["verdict"]["app_peer_ip"] == "10.255.0.1"

    # not due yet: nothing happens
    with django_capture_on_commit_callbacks(execute=True):
        assert recollect_watched_pods.delay().get() == {"compared": 0, "started": 0}

    # someone deletes the policy rule; half an hour later the pod is due again
    fake_apiserver.scenario.data[(TPROXY_NS, POD_NAME)].ip_rule = ip_rule_text(False)
    WatchedPod.objects.update(last_collected=timezone.now() - timedelta(minutes=31))
    with django_capture_on_commit_callbacks(execute=True):
        assert recollect_watched_pods.delay().get()["started"] == 1
    second = CollectionJob.objects.exclude(pk=first.pk).get()
    assert second.state == "done" and second.previous_analysis == first.analysis
    assert second.analysis is not None and second.analysis.derived_from == first.analysis
    after = second.analysis.results["stories"][0]
    assert after["verdict"] != before["verdict"]

    watched = WatchedPod.objects.get()
    assert watched.verdict_changed is True
    assert watched.last_change["before"] == first.analysis.slug and watched.last_change["after"] == second.analysis.slug
    change = watched.last_change["changes"][0]
    assert change["before"] == before["verdict"] and change["after"] == after["verdict"]
    assert change["connection"] == after["connection"]

    data = api.get(watched_url).json()
    assert data["verdict_changed"] is True
    assert data["latest_collection"]["diff"].endswith(f"/diff/{first.analysis.slug}/{second.analysis.slug}/")
    assert data["latest_collection"]["verdict_changes"][0]["after"] == after["verdict"]

    client = Client()
    client.force_login(user)
    page = client.get("/watched-pods/").content.decode()
    assert "verdict changed" in page and f'href="/diff/{first.analysis.slug}/{second.analysis.slug}/"' in page

    # acknowledged through the API
    response = api.patch(watched_url, {"verdict_changed": False}, format="json")
    assert response.status_code == 200 and response.json()["verdict_changed"] is False
    assert api.patch(watched_url, {"verdict_changed": True}, format="json").status_code == 400
