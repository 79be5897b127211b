"""Browsing a cluster (namespaces, pods) made Kubernetes calls inside the web request.  Now a worker lists them
(`meshviz.clusters.browse`): the request answers at once — 202 "pending" in the API, a page that reloads — and shows
the worker's result once it is there (kept for 30 s)."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from meshviz.clusters import tasks
from meshviz.clusters.models import BrowseResult, Cluster
from tests.kube.fake_apiserver import REDIRECT_NS, FakeApiServer

pytestmark = pytest.mark.django_db


def test_listing_is_queued_then_served_from_the_workers_result(
    user: User, cluster: Cluster, fake_apiserver: FakeApiServer
) -> None:
    api = APIClient()
    api.force_authenticate(user)
    page = Client()
    page.force_login(user)
    queued: list[tuple[Any, ...]] = []
    before = len(fake_apiserver.requests_to("GET", "namespaces"))
    with mock.patch.object(tasks.browse, "delay", side_effect=lambda *a: queued.append(a)):  # a real broker
        response = api.get(f"/api/v1/clusters/{cluster.pk}/namespaces/")
        assert response.status_code == 202 and response.json()["state"] == "pending"
        assert response["Retry-After"] == "1"
        html = page.get(f"/clusters/{cluster.pk}/").content.decode()
        assert 'id="browse-pending"' in html and '<meta http-equiv="refresh" content="2">' in html
        pods = api.get(f"/api/v1/clusters/{cluster.pk}/namespaces/{REDIRECT_NS}/pods/")
        assert pods.status_code == 202
    assert len(fake_apiserver.requests_to("GET", "namespaces")) == before  # the web requests asked nothing
    assert (cluster.pk, "namespaces") in queued

    # the worker runs the queued listings
    for args in queued:
        tasks.browse(*args)
    assert BrowseResult.objects.filter(cluster=cluster).count() == 2
    assert len(fake_apiserver.requests_to("GET", "namespaces")) > before  # the worker did ask
    listed = api.get(f"/api/v1/clusters/{cluster.pk}/namespaces/")
    assert listed.status_code == 200 and REDIRECT_NS in listed.json()["namespaces"]
    assert api.get(f"/api/v1/clusters/{cluster.pk}/namespaces/{REDIRECT_NS}/pods/").status_code == 200
    assert f"/clusters/{cluster.pk}/namespaces/{REDIRECT_NS}/" in page.get(f"/clusters/{cluster.pk}/").content.decode()
