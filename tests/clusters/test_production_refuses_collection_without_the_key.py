"""With DEBUG off and no MESHVIZ_ENCRYPTION_KEY, collection is refused with a clear error naming the variable:
503 in the API (errors shape), a page saying so, and no job queued, no kubeconfig stored."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from meshviz.clusters import services
from meshviz.clusters.models import Cluster, CollectionJob

from .helpers import closed_port, kubeconfig_for


@pytest.mark.django_db
def test_collection_and_new_clusters_are_refused_without_the_key(user: User, settings: Any) -> None:
    cluster = services.create_cluster(
        owner=user, name="dev", in_cluster=False, kubeconfig=kubeconfig_for(f"http://127.0.0.1:{closed_port()}")
    )
    settings.DEBUG = False
    settings.MESHVIZ_ENCRYPTION_KEY = ""
    api = APIClient()
    api.force_authenticate(user)

    response = api.post(
        "/api/v1/collections/", {"cluster": cluster.pk, "namespace": "default", "pod": "web-1"}, format="json"
    )
    assert response.status_code == 503
    error = response.json()["errors"][0]
    assert error["source"] == "MESHVIZ_ENCRYPTION_KEY"
    assert "MESHVIZ_ENCRYPTION_KEY must be set when DEBUG is false" in error["message"]
    assert "Fernet.generate_key()" in error["message"]

    response = api.post(
        "/api/v1/clusters/", {"name": "other", "kubeconfig": kubeconfig_for("http://127.0.0.1:1")}, format="json"
    )
    assert response.status_code == 503

    client = Client()
    client.force_login(user)
    page = client.post(f"/clusters/{cluster.pk}/collect/", {"namespace": "default", "pod": "web-1"})
    assert page.status_code == 503
    assert b"MESHVIZ_ENCRYPTION_KEY must be set" in page.content

    assert CollectionJob.objects.count() == 0
    assert list(Cluster.objects.values_list("name", flat=True)) == ["dev"]
