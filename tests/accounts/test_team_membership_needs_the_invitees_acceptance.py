"""A team member could add anyone to a team without consent.  Now a member invites; the invitee joins only by
accepting (or declines), and sees nothing of the team's analyses before."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from meshviz.accounts.models import Team, TeamInvitation

pytestmark = pytest.mark.django_db


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_invitee_is_not_a_member_until_they_accept(user: User, other_user: User) -> None:
    team = Team.objects.create(name="sre")
    team.members.add(user)
    _client(user).post(f"/account/teams/{team.pk}/members/", {"username": other_user.username})
    assert list(team.members.all()) == [user]
    page = _client(other_user).get("/account/").content.decode()
    assert "invited you to <strong>sre</strong>" in page
    invitation = TeamInvitation.objects.get(team=team, invitee=other_user)
    _client(other_user).post(f"/account/invitations/{invitation.pk}/accept/")
    assert set(team.members.all()) == {user, other_user}
    assert not TeamInvitation.objects.exists()


def test_invitee_can_decline(user: User, other_user: User) -> None:
    team = Team.objects.create(name="sre")
    team.members.add(user)
    _client(user).post(f"/account/teams/{team.pk}/members/", {"username": other_user.username})
    invitation = TeamInvitation.objects.get()
    _client(other_user).post(f"/account/invitations/{invitation.pk}/decline/")
    assert list(team.members.all()) == [user] and not TeamInvitation.objects.exists()


def test_nobody_else_can_answer_an_invitation(user: User, other_user: User) -> None:
    team = Team.objects.create(name="sre")
    team.members.add(user)
    invitation = TeamInvitation.objects.create(team=team, invitee=other_user, invited_by=user)
    assert _client(user).post(f"/account/invitations/{invitation.pk}/accept/").status_code == 404
    assert list(team.members.all()) == [user]
