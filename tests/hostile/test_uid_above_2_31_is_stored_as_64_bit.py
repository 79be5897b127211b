"""`proxy_uid` >= 2^31 (PostgreSQL "integer out of range", a 500 before): valid Linux uids up to 4294967294 are
stored (64-bit columns); larger ones are a 400."""

from __future__ import annotations

from typing import Any

import pytest

from meshviz.analyses.models import Analysis
from tests.analyses.helpers import evidence_payload
from tests.hostile.conftest import json_4xx

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("uid", [2**31, 4294967294])
def test_large_valid_uid_is_stored(post_json: Any, uid: int) -> None:
    response = post_json("/api/v1/analyses/", evidence_payload(proxy_uid=uid, proxy_gid=uid))
    assert response.status_code in (201, 202), response.content
    analysis = Analysis.objects.get(slug=response.json()["slug"])
    assert analysis.proxy_uid == uid and analysis.proxy_gid == uid
    assert analysis.state == Analysis.State.DONE, analysis.error


@pytest.mark.parametrize("uid", [2**32 - 1, 2**32, 2**63, 2**64])
def test_uid_outside_linux_range_is_400(post_json: Any, uid: int) -> None:
    (err,) = json_4xx(post_json("/api/v1/analyses/", evidence_payload(proxy_uid=uid)))
    assert err["source"] == "proxy_uid"
    assert not Analysis.objects.exists()


def test_outbound_app_uid_outside_range_is_400(post_json: Any) -> None:
    conns = [{"direction": "outbound", "dst": "203.0.113.10:443", "app_uid": 2**40, "app_gid": 0}]
    errors = json_4xx(post_json("/api/v1/analyses/", evidence_payload(connections=conns)))
    assert any("app_uid" in e["source"] for e in errors)
