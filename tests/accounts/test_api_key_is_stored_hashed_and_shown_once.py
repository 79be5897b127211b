"""An API key is shown once: the database holds its SHA-256 digest and a public prefix, never the key."""

from __future__ import annotations

import hashlib

import pytest
from django.contrib.auth.models import User
from django.test import Client

from meshviz.accounts.models import ApiKey

pytestmark = pytest.mark.django_db


def test_issued_key_is_stored_only_as_a_digest(user: User) -> None:
    key, plaintext = ApiKey.issue(user, "chatops")

    stored = ApiKey.objects.values().get(pk=key.pk)
    assert plaintext.startswith(f"mvz_{key.prefix}_")
    assert len(plaintext) > 40
    assert plaintext not in str(stored)
    assert stored["hashed"] == hashlib.sha256(plaintext.encode()).hexdigest()
    assert ApiKey.lookup(plaintext) == key
    assert ApiKey.lookup(plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B")) is None


def test_account_page_shows_a_new_key_once_then_only_its_prefix(user: User) -> None:
    client = Client()
    client.force_login(user)

    created = client.post("/account/keys/", {"name": "chatops bot"})
    key = ApiKey.objects.get(user=user)
    shown = created.content.decode()
    start = shown.index("mvz_" + key.prefix + "_")
    plaintext = shown[start : shown.index("<", start)]
    assert ApiKey.lookup(plaintext) == key

    again = client.get("/account/").content.decode()
    assert plaintext not in again
    assert f"mvz_{key.prefix}_" in again


def test_revoking_a_key_on_the_account_page_stops_it(user: User) -> None:
    client = Client()
    client.force_login(user)
    key, plaintext = ApiKey.issue(user, "old bot")

    client.post(f"/account/keys/{key.prefix}/revoke/")

    assert ApiKey.lookup(plaintext) is None
    bot = Client(HTTP_AUTHORIZATION=f"Api-Key {plaintext}")
    response = bot.get("/api/v1/analyses/")
    assert response.status_code == 401
    assert response.json()["errors"][0]["message"] == "unknown or revoked API key"


def test_another_users_key_cannot_be_revoked(user: User, other_user: User) -> None:
    key, plaintext = ApiKey.issue(other_user, "theirs")
    client = Client()
    client.force_login(user)

    assert client.post(f"/account/keys/{key.prefix}/revoke/").status_code == 404
    assert ApiKey.lookup(plaintext) == key
