"""`connections` is bounded (2,000 were accepted: 75 s of worker time, 13 MB of results): over the limit is a 400,
at upload and when adding one."""

from __future__ import annotations

from typing import Any

import pytest

from meshviz.analyses.models import Analysis
from meshviz.engine.core.limits import MAX_CONNECTIONS
from tests.analyses.helpers import APP_PORT, evidence_payload
from tests.hostile.conftest import json_4xx

pytestmark = pytest.mark.django_db


def _inbound(n: int) -> list[dict[str, Any]]:
    return [
        {"direction": "inbound", "client": f"10.1.{i // 250}.{i % 250 + 1}:40000", "port": APP_PORT} for i in range(n)
    ]


def test_more_connections_than_the_limit_is_400(post_json: Any) -> None:
    errors = json_4xx(post_json("/api/v1/analyses/", evidence_payload(connections=_inbound(MAX_CONNECTIONS + 1))))
    assert any(e["source"].startswith("connections") for e in errors)
    assert not Analysis.objects.exists()


def test_adding_a_connection_past_the_limit_is_400(post_json: Any) -> None:
    response = post_json("/api/v1/analyses/", evidence_payload(connections=_inbound(MAX_CONNECTIONS)))
    assert response.status_code in (201, 202), response.content[:300]
    slug = response.json()["slug"]
    extra = {"direction": "inbound", "client": "10.9.9.9:40000", "port": APP_PORT}
    (err,) = json_4xx(post_json(f"/api/v1/analyses/{slug}/connections/", extra))
    assert f"at most {MAX_CONNECTIONS} connections" in err["message"]
    assert len(Analysis.objects.get(slug=slug).connections) == MAX_CONNECTIONS
