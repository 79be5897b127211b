"""A request body nested 2,000+ levels deep (RecursionError, an HTML 500 before) is a JSON 400."""

from __future__ import annotations

from typing import Any

import pytest

from tests.hostile.conftest import json_4xx

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("url", ["/api/v1/analyses/", "/api/v1/clusters/"])
def test_deeply_nested_body_is_400_naming_the_depth(post_json: Any, url: str) -> None:
    body = '{"pod_ip": ' + "[" * 5000 + "]" * 5000 + "}"
    (err,) = json_4xx(post_json(url, body, raw=True))
    assert "nested deeper than" in err["message"]
