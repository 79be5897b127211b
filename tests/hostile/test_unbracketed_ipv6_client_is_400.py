"""An unbracketed IPv6 `client` (passed validation and failed in the worker before) is a 400 at upload."""

from __future__ import annotations

from typing import Any

import pytest

from tests.analyses.helpers import evidence_payload
from tests.hostile.conftest import json_4xx

pytestmark = pytest.mark.django_db


def test_unbracketed_ipv6_client_is_400_showing_the_brackets(post_json: Any) -> None:
    conns = [{"direction": "inbound", "client": "2001:db8::1:40000", "port": 8083}]
    errors = json_4xx(post_json("/api/v1/analyses/", evidence_payload(connections=conns)))
    assert any("[2001:db8::1]:40000" in e["message"] for e in errors)


def test_bracketed_ipv4_is_400(post_json: Any) -> None:
    conns = [{"direction": "inbound", "client": "[10.1.1.1]:40000", "port": 8083}]
    json_4xx(post_json("/api/v1/analyses/", evidence_payload(connections=conns)))
