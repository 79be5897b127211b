"""Re-collecting a pod creates a new analysis (derived from the previous one) and links the diff page
`/diff/<previous>/<new>/`; the same pod unchanged means no verdict changed."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from meshviz.analyses.models import Analysis
from meshviz.clusters.models import Cluster, CollectionJob
from tests.kube.fake_apiserver import POD_NAME, REDIRECT_NS

from .helpers import collect_through_api


@pytest.mark.django_db
def test_recollect_links_a_diff_with_the_previous_analysis(
    user: User, cluster: Cluster, django_capture_on_commit_callbacks: Any
) -> None:
    api = APIClient()
    api.force_authenticate(user)
    first = collect_through_api(api, django_capture_on_commit_callbacks, cluster, REDIRECT_NS, POD_NAME)
    assert first["state"] == "done" and first["previous_analysis"] is None and first["diff"] is None

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/v1/collections/{first['id']}/recollect/")
    assert response.status_code == 202, response.content
    second = api.get(response.json()["url"]).json()
    assert second["id"] != first["id"] and second["state"] == "done"
    a, b = first["analysis"]["slug"], second["analysis"]["slug"]
    assert a != b and second["previous_analysis"]["slug"] == a
    assert second["diff"].endswith(f"/diff/{a}/{b}/")
    assert second["verdict_changes"] == []  # nothing changed in the pod
    assert Analysis.objects.get(slug=b).derived_from == Analysis.objects.get(slug=a)

    # the page's re-collect button does the same and lands on the new collection, which links the diff
    client = Client()
    client.force_login(user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/collections/{second['id']}/recollect/")
    third = CollectionJob.objects.order_by("-pk").first()
    assert third is not None and response["Location"] == f"/collections/{third.pk}/"
    assert third.previous_analysis is not None and third.previous_analysis.slug == b
    assert third.analysis is not None
    page = client.get(response["Location"]).content.decode()
    assert f'href="/diff/{b}/{third.analysis.slug}/"' in page
