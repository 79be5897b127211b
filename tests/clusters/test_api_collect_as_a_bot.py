"""A chatops bot with an API key: adds a cluster (kubeconfig upload), browses namespaces and sidecar pods,
asks for a pod to be analysed (202), polls the collection until it is done and gets a one-line verdict with
the analysis permalink - the analysis created exactly as an upload would be, owned by the bot's user."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from meshviz.analyses.models import Analysis
from meshviz.clusters.models import CollectionJob
from tests.conftest import api_client_for
from tests.kube.fake_apiserver import POD_IP, POD_NAME, REDIRECT_NS, FakeApiServer


@pytest.mark.django_db
def test_bot_collects_a_pod_and_reads_the_verdict(
    user: User, api_key: str, fake_apiserver: FakeApiServer, django_capture_on_commit_callbacks: Any
) -> None:
    bot = api_client_for(api_key)

    # a kubeconfig uploaded as a file (multipart)
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("kubeconfig.yaml", fake_apiserver.kubeconfig.encode(), "application/yaml")
    with django_capture_on_commit_callbacks(execute=True):  # the capability check runs in a worker
        response = bot.post("/api/v1/clusters/", {"name": "kind", "kubeconfig": upload}, format="multipart")
    assert response.status_code == 201, response.content
    cluster = bot.get(f"/api/v1/clusters/{response.json()['id']}/").json()
    assert "kubeconfig" not in cluster and fake_apiserver.token not in response.content.decode()
    assert cluster["contexts"] == ["fake", "other"] and cluster["kind"] == "kubeconfig"
    assert cluster["capabilities"]["create_pods_exec"] is True and cluster["check_error"] is None

    namespaces = bot.get(f"/api/v1/clusters/{cluster['id']}/namespaces/").json()["namespaces"]
    assert REDIRECT_NS in namespaces

    pods = bot.get(f"/api/v1/clusters/{cluster['id']}/namespaces/{REDIRECT_NS}/pods/").json()["pods"]
    assert [p["name"] for p in pods] == [POD_NAME]  # redis-0 has no sidecar
    assert pods[0]["interception_mode"] == "REDIRECT" and pods[0]["istio_version"] == "1.18.2"
    assert pods[0]["pod_ip"] == POD_IP
    everything = bot.get(f"/api/v1/clusters/{cluster['id']}/pods/?namespace={REDIRECT_NS}&sidecar_only=false")
    assert {p["name"] for p in everything.json()["pods"]} == {POD_NAME, "redis-0"}

    # "analyse pod X in namespace Y"
    with django_capture_on_commit_callbacks(execute=True):
        response = bot.post(
            "/api/v1/collections/", {"cluster": cluster["id"], "namespace": REDIRECT_NS, "pod": POD_NAME}, format="json"
        )
    assert response.status_code == 202, response.content
    created = response.json()
    assert created["id"] and created["url"].endswith(f"/api/v1/collections/{created['id']}/")

    job = bot.get(created["url"]).json()
    assert job["state"] == "done", job
    assert job["error"] is None and job["provenance"] == "captured" and job["reconstructed"] is False
    steps = [s["step"] for s in job["steps"]]
    assert steps[:3] == ["pod", "config_dump", "netfilter"] and steps[-1] == "done"
    assert all(s["state"] in ("done", "fallback") for s in job["steps"])
    summary = job["analysis"]["summary"]
    assert job["analysis"]["state"] == "done"
    assert summary.startswith("meshviz: ") and job["analysis"]["permalink"] in summary
    assert "127.0.0.6" in summary  # REDIRECT: the application sees Envoy's 127.0.0.6

    analysis = Analysis.objects.get(slug=job["analysis"]["slug"])
    assert analysis.owner == user
    assert analysis.origin == Analysis.Origin.CAPTURED
    assert analysis.pod_name == POD_NAME and analysis.namespace == REDIRECT_NS and str(analysis.pod_ip) == POD_IP
    assert analysis.interception_mode == "REDIRECT" and analysis.app_ports == [8083]
    assert analysis.results["stories"][0]["verdict"]["app_peer_ip"] == "127.0.0.6"
    # the analysis is the bot's own: readable through the analyses API too
    assert bot.get(f"/api/v1/analyses/{analysis.slug}/").status_code == 200
    assert CollectionJob.objects.get(pk=created["id"]).analysis == analysis
