"""`pod_ip` may be left out when the evidence says it (Envoy's node id, a single pod address in the routes);
when it does not, the answer is a 400 naming pod_ip."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from meshviz.analyses.models import Analysis

from .helpers import POD_IP, evidence_payload

pytestmark = pytest.mark.django_db
URL = "/api/v1/analyses/"


def test_the_pod_ip_comes_from_envoys_node_id(api: APIClient, django_capture_on_commit_callbacks: Any) -> None:
    payload = evidence_payload()
    del payload["pod_ip"]
    with django_capture_on_commit_callbacks(execute=True):
        r = api.post(URL, payload, format="json")
    assert r.status_code == 201, r.content
    assert str(Analysis.objects.get(slug=r.json()["slug"]).pod_ip) == POD_IP


def test_without_a_pod_ip_anywhere_it_is_a_400_naming_pod_ip(api: APIClient) -> None:
    payload = evidence_payload()
    del payload["pod_ip"]
    del payload["envoy_config_dump"]
    r = api.post(URL, payload, format="json")
    assert r.status_code == 400
    (err,) = r.json()["errors"]
    assert err["source"] == "pod_ip" and "give pod_ip" in err["message"]
