"""A 4,300+ digit number in a dump (ValueError in redaction, an HTML 500 before) is a 400; in a body too."""

from __future__ import annotations

from typing import Any

import pytest

from tests.analyses.helpers import evidence_payload
from tests.hostile.conftest import json_4xx

pytestmark = pytest.mark.django_db


def test_huge_number_in_the_envoy_dump_is_400(post_json: Any) -> None:
    dump = '{"configs": [{"port_value": ' + "7" * 5000 + "}]}"
    (err,) = json_4xx(post_json("/api/v1/analyses/", evidence_payload(envoy_config_dump=dump)))
    assert err["source"] == "envoy" and "digits" in err["message"]


def test_huge_number_in_the_request_body_is_400(post_json: Any) -> None:
    body = '{"pod_ip": "10.0.0.1", "proxy_uid": ' + "9" * 5000 + "}"
    (err,) = json_4xx(post_json("/api/v1/analyses/", body, raw=True))
    assert "digits" in err["message"]
