"""The public identifier is random (>= 128 bits), unique and unrelated to the database id."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from meshviz.analyses.models import SLUG_BYTES, Analysis, new_slug

pytestmark = pytest.mark.django_db


def test_slug_has_at_least_128_bits_of_randomness() -> None:
    assert SLUG_BYTES * 8 >= 128
    slugs = {new_slug() for _ in range(1000)}
    assert len(slugs) == 1000
    for s in slugs:
        assert re.fullmatch(r"[A-Za-z0-9_-]+", s)
        assert len(s) >= math.ceil(128 / 6)


def test_slug_is_not_the_id_and_the_id_does_not_resolve(api: APIClient, create: Callable[..., Any]) -> None:
    slugs = [create().json()["slug"] for _ in range(2)]
    analyses = [Analysis.objects.get(slug=s) for s in slugs]
    for a in analyses:
        assert a.slug != str(a.pk)
        assert api.get(f"/api/v1/analyses/{a.pk}/").status_code == 404
        assert api.get(f"/api/v1/analyses/{a.slug}/").status_code == 200
    assert slugs[0][:8] != slugs[1][:8]


def test_the_listing_shows_only_the_callers_own_analyses(
    api: APIClient, create: Callable[..., Any], other_user: Any
) -> None:
    mine = create().json()["slug"]
    from meshviz.accounts.models import ApiKey

    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Api-Key {ApiKey.issue(other_user, 'b')[1]}")

    assert [a["slug"] for a in api.get("/api/v1/analyses/").json()["results"]] == [mine]
    assert other.get("/api/v1/analyses/").json()["results"] == []
    assert APIClient().get("/api/v1/analyses/").status_code == 401
