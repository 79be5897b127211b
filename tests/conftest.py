"""Fixtures shared by the Django tests: a user, and clients acting as that user (session or API key)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient


@pytest.fixture
def user(db: Any) -> User:
    return User.objects.create_user("alice", password="alice-password-not-used")


@pytest.fixture
def other_user(db: Any) -> User:
    return User.objects.create_user("mallory", password="mallory-password-not-used")


@pytest.fixture
def api_key(user: User) -> str:
    from meshviz.accounts.models import ApiKey

    return ApiKey.issue(user, "test bot")[1]


@pytest.fixture
def anon_client() -> Client:
    return Client()


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def api_client_for(key: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return api


@pytest.fixture(autouse=True)
def fresh_rate_limits() -> None:
    """Every test starts with empty rate-limit windows (they live in the per-process cache)."""
    from django.core.cache import cache

    cache.clear()
