"""`transport_socket: {"name": true}` (a TypeError in envoy/parser.py, a 500 before) is read with a warning."""

from __future__ import annotations

import json
from typing import Any

import pytest

from meshviz.analyses.models import Analysis
from meshviz.engine.envoy.parser import parse_config_dump
from tests.analyses.helpers import ENVOY_REDIRECT, evidence_payload

pytestmark = pytest.mark.django_db


def _with_odd_transport_socket() -> str:
    dump = json.loads(ENVOY_REDIRECT)
    changed = 0
    for config in dump["configs"]:
        for listener in config.get("dynamic_listeners", []):
            for chain in listener.get("active_state", {}).get("listener", {}).get("filter_chains", []):
                chain["transport_socket"] = {"name": True}
                changed += 1
        for cluster in config.get("dynamic_active_clusters", []):
            cluster["cluster"]["transport_socket"] = {"name": 7}
            changed += 1
    assert changed
    return json.dumps(dump)


def test_engine_warns_about_a_non_string_transport_socket_name() -> None:
    result = parse_config_dump(_with_odd_transport_socket(), source="envoy")
    assert not result.errors
    assert any("transport_socket.name is not a string" in w.message for w in result.warnings)


def test_upload_with_odd_types_is_analysed(post_json: Any) -> None:
    response = post_json("/api/v1/analyses/", evidence_payload(envoy_config_dump=_with_odd_transport_socket()))
    assert response.status_code in (201, 202), response.content
    assert Analysis.objects.get(slug=response.json()["slug"]).state == Analysis.State.DONE
