from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient


@pytest.fixture
def api(api_key: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key}")
    return api


@pytest.fixture
def post_json(api: APIClient, django_capture_on_commit_callbacks: Any) -> Callable[..., Any]:
    def _post(url: str, body: Any, raw: bool = False) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            if raw:
                return api.generic("POST", url, body, content_type="application/json")
            return api.post(url, body, format="json")

    return _post


def json_4xx(response: Any, status: int = 400) -> list[dict[str, Any]]:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("application/json")
    errors: list[dict[str, Any]] = response.json()["errors"]
    assert errors
    return errors
