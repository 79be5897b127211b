"""A user creates a team, adds a colleague by username and can leave it; only members manage a team."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from meshviz.accounts.models import Team, TeamInvitation

pytestmark = pytest.mark.django_db


def test_create_team_add_member_and_leave(user: User, other_user: User) -> None:
    client = Client()
    client.force_login(user)

    client.post("/account/teams/", {"name": "payments-sre"})
    team = Team.objects.get(name="payments-sre")
    client.post(f"/account/teams/{team.pk}/members/", {"username": other_user.username})
    assert set(team.members.all()) == {user}  # invited, not yet a member
    invitee = Client()
    invitee.force_login(other_user)
    (invitation,) = TeamInvitation.objects.filter(team=team, invitee=other_user)
    invitee.post(f"/account/invitations/{invitation.pk}/accept/")

    assert set(team.members.all()) == {user, other_user}
    assert "payments-sre" in client.get("/account/").content.decode()
    client.post(f"/account/teams/{team.pk}/leave/")
    assert set(team.members.all()) == {other_user}


def test_duplicate_team_name_is_a_clear_message(user: User) -> None:
    Team.objects.create(name="sre")
    client = Client()
    client.force_login(user)

    page = client.post("/account/teams/", {"name": "sre"}, follow=True).content.decode()

    assert "A team named &#x27;sre&#x27; already exists." in page


def test_a_non_member_cannot_add_people_to_a_team(user: User, other_user: User) -> None:
    team = Team.objects.create(name="theirs")
    team.members.add(other_user)
    client = Client()
    client.force_login(user)

    assert client.post(f"/account/teams/{team.pk}/members/", {"username": user.username}).status_code == 404
    assert list(team.members.all()) == [other_user]
