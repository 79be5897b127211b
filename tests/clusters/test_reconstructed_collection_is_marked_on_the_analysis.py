"""When the capture container is refused, the collection is marked "reconstructed, not captured" on the job
(API and page) and on the analysis it creates (origin, with the library's note)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from meshviz.analyses.models import Analysis
from meshviz.clusters.models import Cluster
from tests.kube.fake_apiserver import POD_NAME, TPROXY_NS, FakeApiServer

from .helpers import collect_through_api


@pytest.mark.django_db
def test_reconstructed_collection_is_marked_on_the_analysis(
    user: User, cluster: Cluster, fake_apiserver: FakeApiServer, django_capture_on_commit_callbacks: Any
) -> None:
    fake_apiserver.scenario.reject_ephemeral = (422, 'violates PodSecurity "baseline:latest": NET_ADMIN')
    api = APIClient()
    api.force_authenticate(user)
    job = collect_through_api(api, django_capture_on_commit_callbacks, cluster, TPROXY_NS, POD_NAME)
    assert job["state"] == "done" and job["reconstructed"] is True
    assert job["provenance"] == "reconstructed, not captured"
    assert any(n.startswith("reconstructed, not captured") and "PodSecurity" in n for n in job["notes"])
    assert ("netfilter", "fallback") in [(s["step"], s["state"]) for s in job["steps"]]
    assert not fake_apiserver.captures  # nothing ran in the pod

    analysis = Analysis.objects.get(slug=job["analysis"]["slug"])
    assert analysis.origin == Analysis.Origin.RECONSTRUCTED
    assert analysis.get_origin_display() == "reconstructed, not captured"
    assert any("reconstructed, not captured" in n for n in analysis.origin_notes)
    assert analysis.origin_notes[0].startswith(f"collected from {cluster.name}: pod {TPROXY_NS}/{POD_NAME}")
    assert analysis.state == Analysis.State.DONE and analysis.sysctl == ""

    client = Client()
    client.force_login(user)
    page = client.get(f"/collections/{job['id']}/").content.decode()
    assert 'class="tag tag-warn">reconstructed, not captured' in page and "PodSecurity" in page
