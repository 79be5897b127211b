"""Several `envoy_config_dump` parts (istioctl proxy-config listener/cluster/route -o json outputs) are merged into
one dump by the API; a conflict between them is a 400 naming the file."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.engine.envoy.proxy_config_outputs import proxy_config

from .helpers import APP_PORT, ENVOY_REDIRECT, POD_IP, REDIRECT_RULES

pytestmark = pytest.mark.django_db


def _file(name: str, data: Any) -> io.BytesIO:
    f = io.BytesIO(json.dumps(data).encode())
    f.name = name
    return f


def test_listener_cluster_route_parts_give_the_verdict(api: APIClient, django_capture_on_commit_callbacks: Any) -> None:
    pc = proxy_config(ENVOY_REDIRECT)
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post(
            "/api/v1/analyses/",
            {
                "iptables": REDIRECT_RULES,
                "pod_ip": POD_IP,
                "app_ports": [APP_PORT],
                "envoy_config_dump": [_file(f"{k}.json", v) for k, v in pc.items()],
            },
            format="multipart",
        )
    assert created.status_code == 201, created.content
    body = api.get(created.json()["url"]).json()
    assert body["verdicts"][0]["verdict"]["app_peer_ip"] == "127.0.0.6"


def test_conflicting_parts_are_a_400_naming_the_file(api: APIClient) -> None:
    pc = proxy_config(ENVOY_REDIRECT)
    changed = [
        {**x, "per_connection_buffer_limit_bytes": 7} if x.get("name") == "virtualInbound" else x
        for x in pc["listener"]
    ]
    response = api.post(
        "/api/v1/analyses/",
        {
            "iptables": REDIRECT_RULES,
            "pod_ip": POD_IP,
            "envoy_config_dump": [_file("a.json", pc["listener"]), _file("b.json", changed)],
        },
        format="multipart",
    )
    assert response.status_code == 400
    (err,) = response.json()["errors"]
    assert err["source"] == "b.json" and "differs from the one in a.json" in err["message"]
