"""The pages: add a cluster with a pasted kubeconfig, see what the connection may do, pick a namespace, see
its pods with an Istio sidecar (interception mode, Istio version, pod IP), collect one and land on the
collection page, which shows the steps and links the analysis and polls the API with clusters.js."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.contrib.staticfiles import finders
from django.test import Client

from meshviz.clusters.models import Cluster, CollectionJob
from tests.kube.fake_apiserver import POD_IP, POD_NAME, REDIRECT_NS, TPROXY_NS, FakeApiServer


@pytest.mark.django_db
def test_pods_page_lists_sidecar_pods(
    user: User, fake_apiserver: FakeApiServer, django_capture_on_commit_callbacks: Any
) -> None:
    client = Client()
    client.force_login(user)
    assert Client().get("/clusters/").status_code == 302  # login required

    bad = client.post("/clusters/", {"name": "kind", "kubeconfig": "not: [yaml"})
    assert bad.status_code == 400 and "not valid YAML" in bad.content.decode()
    assert Cluster.objects.count() == 0

    fake_apiserver.scenario.forbid("patch", "pods", "ephemeralcontainers")
    # the capability check runs in a worker once the cluster is stored (eager here: on commit)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/clusters/", {"name": "kind", "kubeconfig": fake_apiserver.kubeconfig, "context": "fake"}
        )
    assert response.status_code == 302, response.content.decode()
    cluster = Cluster.objects.get()
    assert response["Location"] == f"/clusters/{cluster.pk}/"

    page = client.get(f"/clusters/{cluster.pk}/").content.decode()
    assert 'data-capability="create_pods_exec">can create_pods_exec' in page
    assert 'data-capability="patch_pods_ephemeralcontainers">cannot patch_pods_ephemeralcontainers' in page
    for ns in ("default", "istio-system", REDIRECT_NS, TPROXY_NS):
        assert f'href="/clusters/{cluster.pk}/namespaces/{ns}/"' in page
    # "Check again" asks the cluster anew (one access review per capability)
    assert f'action="/clusters/{cluster.pk}/check/"' in page
    reviews = len(fake_apiserver.requests_to("POST", "selfsubjectaccessreviews"))
    with django_capture_on_commit_callbacks(execute=True):  # a worker checks (eager here)
        assert client.post(f"/clusters/{cluster.pk}/check/")["Location"] == f"/clusters/{cluster.pk}/"
    assert len(fake_apiserver.requests_to("POST", "selfsubjectaccessreviews")) == 2 * reviews

    page = client.get(f"/clusters/{cluster.pk}/namespaces/{TPROXY_NS}/").content.decode()
    row = re.search(rf'<tr data-pod="{POD_NAME}">(.*?)</tr>', page, re.S)
    assert row is not None, page
    cells = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row.group(1)))
    assert POD_IP in cells and "TPROXY" in cells and "1.18.2" in cells and "Running" in cells
    assert "Collect and analyse" in cells

    page = client.get(f"/clusters/{cluster.pk}/namespaces/{REDIRECT_NS}/").content.decode()
    assert f'data-pod="{POD_NAME}"' in page and "REDIRECT" in page and 'data-pod="redis-0"' not in page
    page = client.get(f"/clusters/{cluster.pk}/namespaces/{REDIRECT_NS}/?all=1").content.decode()
    assert 'data-pod="redis-0"' in page and "no sidecar" in page

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/clusters/{cluster.pk}/collect/", {"namespace": TPROXY_NS, "pod": POD_NAME})
    job = CollectionJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/collections/{job.pk}/"
    page = client.get(response["Location"]).content.decode()
    assert f'data-collection-api="/api/v1/collections/{job.pk}/"' in page
    assert 'src="/static/js/clusters.js"' in page and finders.find("js/clusters.js")
    # the capture container was refused here: the page says the evidence was reconstructed, with the note
    assert "reconstructed, not captured" in page
    for step in ("pod", "config_dump", "netfilter", "reconstruct", "done"):
        assert f"<code>{step}</code>" in page
    assert job.analysis is not None and f'href="/a/{job.analysis.slug}/"' in page
    assert 'data-finished="true"' in page
