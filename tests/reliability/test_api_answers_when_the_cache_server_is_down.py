"""Found by bench/load.py: with Redis down, the throttle's cache lookup (CACHE_URL on Redis) turned every API request
into a 500.  Rate limits now fail open (logged) and diagrams are rendered uncached while the cache is down."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
from django.core.cache import cache
from redis.exceptions import ConnectionError as RedisConnectionError
from rest_framework.test import APIClient

from tests.analyses.helpers import evidence_payload

pytestmark = pytest.mark.django_db


def _down(*args: Any, **kwargs: Any) -> None:
    raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


def test_upload_and_diagram_work_with_the_cache_down(api_key: str, django_capture_on_commit_callbacks: Any) -> None:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key}")
    with (
        mock.patch.object(cache, "get", side_effect=_down),
        mock.patch.object(cache, "set", side_effect=_down),
        mock.patch.object(cache, "add", side_effect=_down),
        mock.patch.object(cache, "incr", side_effect=_down),
    ):
        with django_capture_on_commit_callbacks(execute=True):
            response = api.post("/api/v1/analyses/", evidence_payload(), format="json")
        assert response.status_code == 201, response.content[:300]
        slug = response.json()["slug"]
        assert api.get(f"/api/v1/analyses/{slug}/").json()["state"] == "done"
        diagram = api.get(f"/api/v1/analyses/{slug}/diagram.svg")
        assert diagram.status_code == 200 and diagram["Content-Type"].startswith("image/svg+xml")
        assert APIClient().post("/login/", {"username": "x", "password": "y"}).status_code == 200
