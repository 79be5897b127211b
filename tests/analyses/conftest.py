from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from rest_framework.test import APIClient

from meshviz.analyses.models import Analysis

from .helpers import evidence_payload


@pytest.fixture
def api(api_key: str) -> APIClient:
    """A bot: authenticated with alice's API key."""
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key}")
    return api


@pytest.fixture
def create(api: APIClient, django_capture_on_commit_callbacks: Any) -> Callable[..., Any]:
    """POST an analysis (JSON) and run what was queued on commit, as the embedded (eager) mode does."""

    def _create(**overrides: Any) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return api.post("/api/v1/analyses/", evidence_payload(**overrides), format="json")

    return _create


@pytest.fixture
def done_analysis(create: Callable[..., Any]) -> Iterator[Analysis]:
    response = create()
    assert response.status_code == 201, response.content
    yield Analysis.objects.get(slug=response.json()["slug"])
