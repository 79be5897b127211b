"""Requests are throttled per API key (MESHVIZ_API_RATE): one busy bot does not starve another key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import override_settings
from rest_framework.test import APIClient

from meshviz.accounts.models import ApiKey

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def empty_buckets() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


def bot(user: User, name: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {ApiKey.issue(user, name)[1]}")
    return api


@override_settings(MESHVIZ_API_RATE="3/min")
def test_fourth_request_in_a_minute_is_429_for_that_key_only(user: User) -> None:
    busy, quiet = bot(user, "busy"), bot(user, "quiet")

    codes = [busy.get("/api/v1/analyses/").status_code for _ in range(4)]

    assert codes == [200, 200, 200, 429]
    limited = busy.get("/api/v1/analyses/")
    assert limited.status_code == 429
    assert int(limited["Retry-After"]) > 0
    assert "throttled" in limited.json()["errors"][0]["message"].lower()
    assert quiet.get("/api/v1/analyses/").status_code == 200


@override_settings(MESHVIZ_API_RATE="1000/min")
def test_a_generous_rate_lets_a_bot_through(user: User) -> None:
    busy = bot(user, "busy")
    assert {busy.get("/api/v1/analyses/").status_code for _ in range(10)} == {200}
