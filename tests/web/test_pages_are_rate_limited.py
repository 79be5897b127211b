"""Pages had no throttle.  Anonymous visitors are limited per address (MESHVIZ_PAGE_ANON_RATE), users each
(MESHVIZ_PAGE_RATE): 429 with Retry-After; the API (per key), static files and /healthz are not counted here."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings

pytestmark = pytest.mark.django_db


@override_settings(MESHVIZ_PAGE_ANON_RATE="5/min", MESHVIZ_PAGE_RATE="8/min")
def test_anonymous_pages_are_limited_per_address(user: User) -> None:
    visitor = Client(REMOTE_ADDR="198.51.100.20")
    codes = [visitor.get("/").status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]
    response = visitor.get("/login/")
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    assert visitor.get("/healthz").status_code in (200, 503)  # not counted
    assert Client(REMOTE_ADDR="198.51.100.21").get("/").status_code == 200  # another address
    member = Client(REMOTE_ADDR="198.51.100.20")
    member.force_login(user)
    assert [member.get("/").status_code for _ in range(9)] == [200] * 8 + [429]  # per user
