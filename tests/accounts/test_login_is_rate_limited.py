"""30 wrong passwords went through in 7.7 s.  Login attempts are now limited per address and per user name:
429 with Retry-After beyond MESHVIZ_LOGIN_RATE, even with the right password."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings

pytestmark = pytest.mark.django_db


@override_settings(MESHVIZ_LOGIN_RATE="5/min")
def test_sixth_attempt_in_a_minute_is_429(user: User) -> None:
    client = Client()
    for _ in range(5):
        assert client.post("/login/", {"username": "alice", "password": "wrong"}).status_code == 200
    response = client.post("/login/", {"username": "alice", "password": "alice-password-not-used"})
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert "Too many login attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session


@override_settings(MESHVIZ_LOGIN_RATE="5/min")
def test_the_limit_is_per_user_name_across_addresses(user: User) -> None:
    for i in range(5):
        Client(REMOTE_ADDR=f"10.0.0.{i + 1}").post("/login/", {"username": "Alice", "password": "wrong"})
    response = Client(REMOTE_ADDR="10.0.0.99").post("/login/", {"username": "alice", "password": "wrong"})
    assert response.status_code == 429


@override_settings(MESHVIZ_LOGIN_RATE="5/min")
def test_a_correct_login_within_the_limit_works(user: User) -> None:
    client = Client()
    assert client.post("/login/", {"username": "alice", "password": "alice-password-not-used"}).status_code == 302
