"""The new-analysis page's Envoy upload takes several files (istioctl proxy-config listener/cluster/route -o json)
and merges them into one dump; a conflict between them is shown on the field, naming the file."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.test import Client

from meshviz.analyses.models import Analysis
from tests.analyses.helpers import ENVOY_REDIRECT, POD_IP, REDIRECT_RULES
from tests.engine.envoy.proxy_config_outputs import proxy_config

pytestmark = pytest.mark.django_db


def _file(name: str, data: Any) -> io.BytesIO:
    f = io.BytesIO(json.dumps(data).encode())
    f.name = name
    return f


def test_several_files_become_one_dump(client: Client, django_capture_on_commit_callbacks: Any) -> None:
    assert 'name="envoy_config_dump_file" multiple' in client.get("/new/").content.decode()
    pc = proxy_config(ENVOY_REDIRECT)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/new/",
            {
                "iptables": REDIRECT_RULES,
                "pod_ip": POD_IP,
                "app_ports": "8083",
                "envoy_config_dump_file": [_file(f"{k}.json", v) for k, v in pc.items()],
            },
        )
    assert response.status_code == 302, response.content.decode()[:2000]
    a = Analysis.objects.get()
    assert a.results["stories"][0]["verdict"]["app_peer_ip"] == "127.0.0.6"


def test_conflicting_files_are_named(client: Client) -> None:
    pc = proxy_config(ENVOY_REDIRECT)
    changed = [
        {**x, "per_connection_buffer_limit_bytes": 7} if x.get("name") == "virtualInbound" else x
        for x in pc["listener"]
    ]
    response = client.post(
        "/new/",
        {
            "iptables": REDIRECT_RULES,
            "pod_ip": POD_IP,
            "envoy_config_dump_file": [_file("a.json", pc["listener"]), _file("b.json", changed)],
        },
    )
    assert response.status_code == 400
    assert "b.json:1:1: listener &#x27;virtualInbound&#x27; differs from the one in a.json" in response.content.decode()
