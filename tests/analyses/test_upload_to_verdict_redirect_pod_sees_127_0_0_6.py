"""Uploaded files -> analysis -> verdict: a REDIRECT pod's application sees 127.0.0.6, and the fix is TPROXY."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from meshviz.analyses.models import ENGINE_VERSION, Analysis

from .helpers import APP_PORT, ENVOY_REDIRECT, POD_IP, REDIRECT_RULES

pytestmark = pytest.mark.django_db


def test_multipart_upload_gives_127_0_0_6_and_the_tproxy_fix(
    api: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            "/api/v1/analyses/",
            {
                "iptables": SimpleUploadedFile("iptables-save.txt", REDIRECT_RULES.encode()),
                "envoy_config_dump": SimpleUploadedFile("config_dump.json", ENVOY_REDIRECT.encode()),
                "pod_ip": POD_IP,
                "app_ports": [str(APP_PORT)],
            },
            format="multipart",
        )
    assert response.status_code == 201, response.content
    created = response.json()
    # The task ran on commit (in-process, the embedded default); read the analysis as a client would.
    created = api.get(created["url"]).json()
    assert created["state"] == "done"
    assert created["permalink"].endswith(f"/a/{created['slug']}/")

    analysis = Analysis.objects.get(slug=created["slug"])
    assert analysis.interception_mode == "REDIRECT"
    assert analysis.engine_version == ENGINE_VERSION
    inbound = analysis.results["stories"][0]
    assert inbound["connection"] == {"direction": "inbound", "client": "10.255.0.1:40000", "port": APP_PORT}
    assert inbound["verdict"]["app_peer_ip"] == "127.0.0.6"
    outbound = analysis.results["stories"][1]
    assert outbound["connection"]["direction"] == "outbound"
    assert outbound["connection"]["dst"] == "203.0.113.10:443"

    fix = analysis.results["fix"]
    assert fix["works"] is True
    assert [p["key"] for p in fix["patches"]] == ["switch-to-tproxy"]
    assert fix["after"]["app_peer_ip"] == "10.255.0.1"
    assert analysis.results["comparison"]["modes"] == ["REDIRECT", "TPROXY"]

    summary = created["summary"]
    assert "127.0.0.6" in summary and "TPROXY" in summary.upper() and created["permalink"] in summary
    assert "\n" not in summary
