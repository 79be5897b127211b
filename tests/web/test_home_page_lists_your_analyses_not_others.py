"""The home page lists a logged-in user's analyses and those shared with their teams, never anyone else's."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from meshviz.accounts.models import Team

from .helpers import from_example

pytestmark = pytest.mark.django_db


def test_home_lists_own_and_team_analyses_only(
    client: Client, user: User, other_user: User, anon_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    mine = from_example(client, django_capture_on_commit_callbacks)
    theirs_client = Client()
    theirs_client.force_login(other_user)
    theirs = from_example(theirs_client, django_capture_on_commit_callbacks)
    shared = from_example(theirs_client, django_capture_on_commit_callbacks, "tproxy-istio-1.6-loop")
    team = Team.objects.create(name="sre")
    team.members.add(user, other_user)
    shared.teams.add(team)

    page = client.get("/").content.decode()

    assert mine.permalink_path in page
    assert shared.permalink_path in page
    assert theirs.permalink_path not in page
    assert "Your analyses" not in anon_client.get("/").content.decode()
