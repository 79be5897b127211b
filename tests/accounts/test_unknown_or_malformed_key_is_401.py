"""The API answers 401 with a JSON error and a WWW-Authenticate challenge without a valid key."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from meshviz.accounts.models import ApiKey

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "Authentication credentials were not provided."),
        ("Api-Key mvz_00000000_nope", "unknown or revoked API key"),
        ("Api-Key not-a-meshviz-key", "unknown or revoked API key"),
        ("Api-Key two words", "malformed Authorization header: expected 'Api-Key <key>'"),
    ],
)
def test_creating_an_analysis_needs_a_valid_key(header: str | None, message: str) -> None:
    api = APIClient()
    if header:
        api.credentials(HTTP_AUTHORIZATION=header)

    response = api.post("/api/v1/analyses/", {"iptables": "*filter\nCOMMIT\n", "pod_ip": "10.0.0.1"}, format="json")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Api-Key realm="meshviz"'
    assert response.json()["errors"][0]["message"] == message


def test_bearer_scheme_is_accepted_too(user: User) -> None:
    _, plaintext = ApiKey.issue(user, "bot")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")

    assert api.get("/api/v1/analyses/").status_code == 200


def test_a_deactivated_users_key_stops_working(user: User) -> None:
    _, plaintext = ApiKey.issue(user, "bot")
    user.is_active = False
    user.save()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {plaintext}")

    assert api.get("/api/v1/analyses/").status_code == 401
