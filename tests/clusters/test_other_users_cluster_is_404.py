"""A user sees only their own clusters, collections and watched pods: anyone else's is a 404 (API and pages),
exactly like an id that does not exist; anonymous API calls are a 401 and anonymous pages go to the login."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from meshviz.clusters import services
from meshviz.clusters.models import Cluster, CollectionJob, WatchedPod

from .helpers import closed_port, kubeconfig_for


@pytest.fixture
def mallorys(other_user: User) -> dict[str, Any]:
    cluster = services.create_cluster(
        owner=other_user, name="prod", in_cluster=False, kubeconfig=kubeconfig_for(f"http://127.0.0.1:{closed_port()}")
    )
    job = CollectionJob.objects.create(owner=other_user, cluster=cluster, namespace="default", pod="web-1")
    watched = WatchedPod.objects.create(owner=other_user, cluster=cluster, namespace="default", pod="web-1")
    return {"cluster": cluster, "job": job, "watched": watched}


@pytest.mark.django_db
def test_api_hides_other_users_objects(user: User, mallorys: dict[str, Any]) -> None:
    api = APIClient()
    api.force_authenticate(user)
    c, j, w = mallorys["cluster"].pk, mallorys["job"].pk, mallorys["watched"].pk
    for url in (
        f"/api/v1/clusters/{c}/",
        f"/api/v1/clusters/{c}/namespaces/",
        f"/api/v1/clusters/{c}/pods/?namespace=default",
        f"/api/v1/clusters/{c}/namespaces/default/pods/",
        f"/api/v1/collections/{j}/",
        f"/api/v1/watched-pods/{w}/",
    ):
        response = api.get(url)
        assert response.status_code == 404, (url, response.content)
        error = response.json()["errors"][0]
        assert "not yours" in error["message"] and set(error) >= {"source", "line", "column", "text", "message"}
    assert api.post(f"/api/v1/clusters/{c}/check/").status_code == 404
    assert api.delete(f"/api/v1/clusters/{c}/").status_code == 404
    assert api.delete(f"/api/v1/watched-pods/{w}/").status_code == 404
    assert api.post(f"/api/v1/collections/{j}/recollect/").status_code == 404
    # using someone else's cluster by id is refused the same way, and nothing is queued
    response = api.post("/api/v1/collections/", {"cluster": c, "namespace": "default", "pod": "web-1"}, format="json")
    assert response.status_code == 404 and "cluster" in response.json()["errors"][0]["message"]
    response = api.post("/api/v1/watched-pods/", {"cluster": c, "namespace": "default", "pod": "x"}, format="json")
    assert response.status_code == 404
    assert api.get("/api/v1/clusters/").json() == []
    assert api.get("/api/v1/collections/").json() == []
    assert api.get("/api/v1/watched-pods/").json() == []
    assert Cluster.objects.count() == 1 and CollectionJob.objects.count() == 1 and WatchedPod.objects.count() == 1


@pytest.mark.django_db
def test_pages_hide_other_users_objects(user: User, mallorys: dict[str, Any]) -> None:
    client = Client()
    client.force_login(user)
    c, j = mallorys["cluster"].pk, mallorys["job"].pk
    assert client.get(f"/clusters/{c}/").status_code == 404
    assert client.get(f"/clusters/{c}/namespaces/default/").status_code == 404
    assert client.get(f"/collections/{j}/").status_code == 404
    assert client.post(f"/clusters/{c}/collect/", {"namespace": "default", "pod": "web-1"}).status_code == 404
    assert client.post(f"/collections/{j}/recollect/").status_code == 404
    assert client.post(f"/clusters/{c}/delete/").status_code == 404
    listing = client.get("/clusters/")
    assert listing.status_code == 200 and b"prod" not in listing.content
    assert CollectionJob.objects.count() == 1 and Cluster.objects.filter(pk=c).exists()


@pytest.mark.django_db
def test_anonymous_api_is_401_and_pages_redirect_to_login(mallorys: dict[str, Any]) -> None:
    response = APIClient().get("/api/v1/clusters/")
    assert response.status_code == 401
    assert response.json()["errors"][0]["message"]
    page = Client().get(f"/collections/{mallorys['job'].pk}/")
    assert page.status_code == 302 and "login" in page["Location"]
