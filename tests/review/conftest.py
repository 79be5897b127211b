"""Fixtures for the security review tests: alice's private world (analyses, cluster, collection, watched pod,
team, API key) and mallory, a second user with no shared team.

Clusters talk to the fake Kubernetes API server of tests/kube; the encryption key is set as in tests/clusters.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache

from tests.clusters.conftest import ENCRYPTION_KEY, encryption_key, fake_apiserver, loopback_api_server_allowed
from tests.review.support import World, build_world

__all__ = [
    "ENCRYPTION_KEY",
    "encryption_key",
    "fake_apiserver",
    "loopback_api_server_allowed",
    "unthrottled",
    "world",
]


@pytest.fixture(autouse=True)
def unthrottled(settings: Any) -> None:
    """The matrix makes hundreds of API requests as one user: lift the per-key rate, start from a clean cache."""
    settings.MESHVIZ_API_RATE = "1000000/min"
    settings.MESHVIZ_WHATIF_ANON_RATE = settings.MESHVIZ_WHATIF_RATE = settings.MESHVIZ_LOGIN_RATE = "1000000/min"
    settings.MESHVIZ_PAGE_ANON_RATE = settings.MESHVIZ_PAGE_RATE = "1000000/min"
    cache.clear()


@pytest.fixture
def world(user: User, other_user: User, fake_apiserver: Any) -> World:
    return build_world(user, other_user, fake_apiserver)
