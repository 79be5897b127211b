"""An upload that names no pod: the pod's name, namespace, workload and labels come from the Envoy dump's node
metadata, and show in the API, the chat summary line and the generated patches."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from .helpers import evidence_payload

pytestmark = pytest.mark.django_db


def test_identity_from_the_dump_in_api_summary_and_patches(
    api: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    payload = evidence_payload()
    for key in ("pod_name", "namespace", "labels"):
        del payload[key]
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post("/api/v1/analyses/", payload, format="json")
    assert created.status_code == 201, created.content
    got = api.get(created.json()["url"]).json()
    assert got["state"] == "done"
    assert (got["pod"]["name"], got["pod"]["namespace"]) == ("geo-5c54dcd5bd-z5ghf", "hr2")
    assert got["pod"]["labels"]["service.istio.io/canonical-name"] == "geo"
    assert got["summary"].startswith("meshviz: hr2/geo-5c54dcd5bd-z5ghf: ")
    contents = [a["content"] for p in got["fix"]["patches"] for a in p["artifacts"]]
    assert any(c.startswith("kubectl -n hr2 patch deployment/geo ") for c in contents), contents
    assert not any("<your-workload>" in c for c in contents)
