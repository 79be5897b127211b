"""Bad requests to the live-collection API get a 4xx in the analyses API's error shape naming what is wrong:
an unusable kubeconfig (and nothing is stored), both or neither of kubeconfig/in_cluster, a duplicate name,
bad namespace/pod names, a missing ?namespace=, an unknown cluster."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from meshviz.clusters.models import Cluster, CollectionJob

from .helpers import closed_port, kubeconfig_for

KEYS = {"source", "line", "column", "text", "message"}


@pytest.fixture
def api(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _errors(response: object) -> list[dict[str, object]]:
    data = response.json()  # type: ignore[attr-defined]
    assert set(data) == {"errors"}
    for e in data["errors"]:
        assert set(e) >= KEYS
    return list(data["errors"])


@pytest.mark.django_db
def test_unusable_kubeconfigs_are_400_and_not_stored(api: APIClient) -> None:
    cases = {
        "not: [valid": "not valid YAML",
        "apiVersion: v1\nkind: Config\n": "no contexts",
        kubeconfig_for("http://127.0.0.1:1").replace("token: ", "tokenFile: "): "tokenFile",
    }
    for text, expected in cases.items():
        response = api.post("/api/v1/clusters/", {"name": "c", "kubeconfig": text}, format="json")
        assert response.status_code == 400, response.content
        error = _errors(response)[0]
        assert error["source"] == "kubeconfig" and expected in str(error["message"]), error
    response = api.post(
        "/api/v1/clusters/",
        {"name": "c", "kubeconfig": kubeconfig_for("http://127.0.0.1:1"), "context": "nope"},
        format="json",
    )
    assert response.status_code == 400 and "no context 'nope'" in str(_errors(response)[0]["message"])
    assert Cluster.objects.count() == 0


@pytest.mark.django_db
def test_kubeconfig_xor_in_cluster_and_unique_names(api: APIClient) -> None:
    config = kubeconfig_for(f"http://127.0.0.1:{closed_port()}")
    response = api.post("/api/v1/clusters/", {"name": "c"}, format="json")
    assert response.status_code == 400 and _errors(response)[0]["source"] == "kubeconfig"
    response = api.post("/api/v1/clusters/", {"name": "c", "kubeconfig": config, "in_cluster": True}, format="json")
    assert response.status_code == 400 and "not both" in str(_errors(response)[0]["message"])
    assert api.post("/api/v1/clusters/", {"name": "c", "kubeconfig": config}, format="json").status_code == 201
    response = api.post("/api/v1/clusters/", {"name": "c", "kubeconfig": config}, format="json")
    assert response.status_code == 400 and _errors(response)[0]["source"] == "name"
    assert Cluster.objects.count() == 1


@pytest.mark.django_db
def test_bad_names_and_unknown_cluster(api: APIClient) -> None:
    config = kubeconfig_for(f"http://127.0.0.1:{closed_port()}")
    cluster = api.post("/api/v1/clusters/", {"name": "c", "kubeconfig": config}, format="json").json()["id"]
    response = api.post(
        "/api/v1/collections/", {"cluster": cluster, "namespace": "Bad_NS", "pod": "web/1"}, format="json"
    )
    assert response.status_code == 400
    sources = {e["source"] for e in _errors(response)}
    assert sources == {"namespace", "pod"}
    response = api.post("/api/v1/collections/", {"cluster": 99999, "namespace": "a", "pod": "b"}, format="json")
    assert response.status_code == 404 and "no cluster 99999" in str(_errors(response)[0]["message"])
    response = api.get(f"/api/v1/clusters/{cluster}/pods/")
    assert response.status_code == 400 and _errors(response)[0]["source"] == "namespace"
    response = api.get(f"/api/v1/clusters/{cluster}/pods/?namespace=default&sidecar_only=maybe")
    assert response.status_code == 400 and _errors(response)[0]["source"] == "sidecar_only"
    assert api.get("/api/v1/collections/424242/").status_code == 404
    assert CollectionJob.objects.count() == 0


@pytest.mark.django_db
def test_unreachable_cluster_is_a_gateway_error_with_the_kind(
    api: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    config = kubeconfig_for(f"http://127.0.0.1:{closed_port()}")
    with django_capture_on_commit_callbacks(execute=True):  # the check runs in a worker (eager here)
        created = api.post("/api/v1/clusters/", {"name": "c", "kubeconfig": config}, format="json").json()
    created = api.get(f"/api/v1/clusters/{created['id']}/").json()
    assert created["check_error"]["kind"] == "unreachable" and created["capabilities"] == {}
    response = api.get(f"/api/v1/clusters/{created['id']}/namespaces/")
    assert response.status_code == 502
    error = _errors(response)[0]
    assert error["source"] == "cluster" and error["kind"] == "unreachable" and error["retryable"] is True


@pytest.mark.django_db
def test_in_cluster_connection_outside_a_cluster_says_why(
    api: APIClient, user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    user.is_staff = True  # only staff may use meshviz's own service account
    user.save()
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post("/api/v1/clusters/", {"name": "self", "in_cluster": True}, format="json")
    assert created.status_code == 201, created.content
    data = api.get(f"/api/v1/clusters/{created.json()['id']}/").json()
    assert data["kind"] == "in_cluster" and data["capabilities"] == {}
    assert data["check_error"]["kind"] == "invalid_kubeconfig"
    assert "not running inside a cluster" in data["check_error"]["message"]
    response = api.get(f"/api/v1/clusters/{data['id']}/namespaces/")
    assert response.status_code == 400 and _errors(response)[0]["kind"] == "invalid_kubeconfig"
