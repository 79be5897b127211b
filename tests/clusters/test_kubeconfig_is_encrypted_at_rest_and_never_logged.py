"""The uploaded kubeconfig is stored only as a Fernet token: its plaintext (and its bearer token) is in no
column of the cluster's row, in no API response or page, and in none of the log records - at DEBUG level,
from every logger, the Kubernetes client's included - emitted while the cluster is added, browsed and a
pod is collected and analysed."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from meshviz.analyses.models import Analysis
from meshviz.clusters.models import Cluster
from tests.kube.fake_apiserver import POD_NAME, REDIRECT_NS, FakeApiServer, Scenario

SECRET_TOKEN = "s3cr3t-bearer-7f2c9a4e1b8d6035-never-shown"


@pytest.fixture
def secret_apiserver() -> Iterator[FakeApiServer]:
    with FakeApiServer(Scenario.istio(), token=SECRET_TOKEN) as fake:
        yield fake


@pytest.mark.django_db
def test_kubeconfig_is_encrypted_at_rest_and_never_logged(
    user: User,
    secret_apiserver: FakeApiServer,
    encryption_key: str,
    caplog: pytest.LogCaptureFixture,
    django_capture_on_commit_callbacks: Any,
) -> None:
    kubeconfig = secret_apiserver.kubeconfig
    assert SECRET_TOKEN in kubeconfig
    api = APIClient()
    api.force_authenticate(user)
    bodies: list[str] = []
    caplog.set_level(logging.DEBUG, logger="kubernetes")
    caplog.set_level(logging.DEBUG, logger="urllib3")
    with caplog.at_level(logging.DEBUG):
        response = api.post("/api/v1/clusters/", {"name": "secret", "kubeconfig": kubeconfig}, format="json")
        assert response.status_code == 201, response.content
        cluster_id = response.json()["id"]
        bodies.append(response.content.decode())
        bodies.append(api.get(f"/api/v1/clusters/{cluster_id}/").content.decode())
        bodies.append(api.get("/api/v1/clusters/").content.decode())
        bodies.append(api.post(f"/api/v1/clusters/{cluster_id}/check/").content.decode())
        bodies.append(api.get(f"/api/v1/clusters/{cluster_id}/namespaces/").content.decode())
        with django_capture_on_commit_callbacks(execute=True):
            response = api.post(
                "/api/v1/collections/",
                {"cluster": cluster_id, "namespace": REDIRECT_NS, "pod": POD_NAME},
                format="json",
            )
        job = api.get(response.json()["url"]).json()
        bodies.append(str(job))
        client = Client()
        client.force_login(user)
        for url in ("/clusters/", f"/clusters/{cluster_id}/", f"/collections/{job['id']}/"):
            bodies.append(client.get(url).content.decode())

    # the collection really happened, with the Kubernetes client logging at DEBUG
    assert job["state"] == "done", job
    assert any(r.name.startswith(("kubernetes", "urllib3")) for r in caplog.records)
    assert any(r.name.startswith("meshviz.") for r in caplog.records)
    # the requests did carry the token (the fake refuses requests without it) ...
    assert secret_apiserver.requests
    # ... but no log record, response or page did
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.args!r}" for r in caplog.records)
    for text in (logged, *bodies):
        assert SECRET_TOKEN not in text
        assert "current-context: fake" not in text

    # at rest: every column of the row, as the database returns it
    table = Cluster._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table} WHERE id = %s", [cluster_id])
        row = cursor.fetchone()
    assert row is not None
    raw = " ".join(str(value) for value in row)
    assert SECRET_TOKEN not in raw and "current-context: fake" not in raw and kubeconfig not in raw
    stored = Cluster.objects.get(pk=cluster_id).kubeconfig_encrypted
    assert stored in raw
    # ... and it is a Fernet token under MESHVIZ_ENCRYPTION_KEY that opens to exactly the upload
    assert Fernet(encryption_key.encode()).decrypt(stored.encode()).decode() == kubeconfig
    assert SECRET_TOKEN not in repr(Cluster.objects.get(pk=cluster_id))
    # nothing of it leaked into the analysis either
    analysis = Analysis.objects.get(slug=job["analysis"]["slug"])
    assert all(SECRET_TOKEN not in str(getattr(analysis, f.attname)) for f in Analysis._meta.concrete_fields)
