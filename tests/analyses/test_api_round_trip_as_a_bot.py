"""A bot creates an analysis with JSON, polls it, and posts the one-line summary; then reads comparison and fix."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from .helpers import APP_PORT

pytestmark = pytest.mark.django_db


def test_create_poll_and_read_the_summary(api: APIClient, create: Callable[..., Any]) -> None:
    created = create()
    assert created.status_code == 201
    body = created.json()
    assert set(body) == {"slug", "permalink", "url", "state", "summary"}

    deadline = time.monotonic() + 10
    while True:
        analysis = api.get(body["url"]).json()
        if analysis["state"] in ("done", "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.2)

    assert analysis["state"] == "done"
    assert analysis["summary"].startswith("meshviz: ")
    assert analysis["summary"].endswith(body["permalink"])
    assert "the application sees 127.0.0.6" in analysis["summary"]
    first = analysis["verdicts"][0]
    assert first["connection"]["port"] == APP_PORT
    assert first["verdict"]["app_peer_ip"] == "127.0.0.6"
    assert analysis["findings"][0]["findings"], "the verdict is explained"
    assert all(f["kind"] != "assumption" for f in analysis["findings"][0]["findings"])
    assert analysis["fix"]["works"] is True
    assert analysis["pod"]["interception_mode"] == "REDIRECT"

    comparison = api.get(f"/api/v1/analyses/{body['slug']}/comparison/")
    assert comparison.status_code == 200
    conn = comparison.json()["comparison"]["connections"][0]
    assert conn["differences"]["app_peer_ip"] == {"REDIRECT": "127.0.0.6", "TPROXY": "10.255.0.1"}

    fix = api.get(f"/api/v1/analyses/{body['slug']}/fix/")
    assert fix.status_code == 200
    assert fix.json()["fix"]["patches"][0]["key"] == "switch-to-tproxy"


def test_adding_a_connection_re_runs_with_it(
    api: APIClient, create: Callable[..., Any], django_capture_on_commit_callbacks: Any
) -> None:
    slug = create().json()["slug"]
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            f"/api/v1/analyses/{slug}/connections/",
            {"direction": "inbound", "client": "192.0.2.7:51000", "port": APP_PORT},
            format="json",
        )
    assert response.status_code == 202, response.content
    # Outside a test's transaction the eager task runs before the response; here it runs on leaving the block.
    body = api.get(f"/api/v1/analyses/{slug}/").json()
    assert body["state"] == "done"
    assert [v["connection"].get("client") for v in body["verdicts"]] == ["10.255.0.1:40000", None, "192.0.2.7:51000"]
    assert body["verdicts"][2]["verdict"]["app_peer_ip"] == "127.0.0.6"
