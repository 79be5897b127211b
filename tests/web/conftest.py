from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client


@pytest.fixture
def client(user: User) -> Client:
    """The web tests browse as alice, logged in (anonymous visitors use `anon_client`)."""
    c = Client()
    c.force_login(user)
    return c
