"""Analyses are private to their owner and the teams they are shared with; public permalinks are read-only.

Someone who may not read an analysis gets exactly what an unknown slug gets (404), so a permalink never
reveals that something is behind it; an anonymous visitor to a private page is sent to log in first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from meshviz.accounts.models import ApiKey, Team
from meshviz.analyses.models import Analysis

pytestmark = pytest.mark.django_db

NEW_CONNECTION = {"direction": "inbound", "client": "10.9.9.9:5555", "port": 8083}


def bot_for(user: User) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {ApiKey.issue(user, 'bot')[1]}")
    return api


def browser_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def analysis(done_analysis: Analysis, user: User) -> Analysis:
    assert done_analysis.owner == user and not done_analysis.public
    return done_analysis


def test_owner_reads_it_in_the_browser_and_the_api(analysis: Analysis, user: User, api: APIClient) -> None:
    assert browser_for(user).get(analysis.permalink_path).status_code == 200
    body = api.get(f"/api/v1/analyses/{analysis.slug}/").json()
    assert body["owner"] == "alice" and body["public"] is False and body["teams"] == []


def test_another_user_gets_404_like_an_unknown_slug(analysis: Analysis, other_user: User) -> None:
    browser, bot = browser_for(other_user), bot_for(other_user)
    paths = [
        analysis.permalink_path,
        f"{analysis.permalink_path}diagram/1.svg",
        f"{analysis.permalink_path}fix/1/1.txt",
    ]

    assert [browser.get(p).status_code for p in paths] == [404, 404, 404]
    for suffix in ("", "comparison/", "fix/", "sharing/"):
        assert bot.get(f"/api/v1/analyses/{analysis.slug}/{suffix}").status_code == 404
    assert bot.get(f"/api/v1/analyses/{analysis.slug}/diagram.svg").status_code == 404
    assert bot.post(f"/api/v1/analyses/{analysis.slug}/connections/", NEW_CONNECTION, format="json").status_code == 404
    unknown = bot.get("/api/v1/analyses/" + "x" * 30 + "/")
    private = bot.get(f"/api/v1/analyses/{analysis.slug}/")
    assert private.json() == unknown.json()


def test_anonymous_visitor_is_sent_to_log_in_and_back(analysis: Analysis, anon_client: Client) -> None:
    response = anon_client.get(analysis.permalink_path)

    assert response.status_code == 302
    assert response["Location"] == f"/login/?next={analysis.permalink_path}"
    assert APIClient().get(f"/api/v1/analyses/{analysis.slug}/").status_code == 404


def test_team_members_read_and_add_connections(
    analysis: Analysis, user: User, other_user: User, api: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    team = Team.objects.create(name="sre")
    team.members.add(user, other_user)

    shared = api.post(f"/api/v1/analyses/{analysis.slug}/sharing/", {"teams": ["sre"]}, format="json")

    assert shared.status_code == 200 and shared.json() == {"public": False, "teams": ["sre"]}
    colleague = bot_for(other_user)
    assert colleague.get(f"/api/v1/analyses/{analysis.slug}/").status_code == 200
    assert [a["slug"] for a in colleague.get("/api/v1/analyses/").json()["results"]] == [analysis.slug]
    with django_capture_on_commit_callbacks(execute=True):
        added = colleague.post(f"/api/v1/analyses/{analysis.slug}/connections/", NEW_CONNECTION, format="json")
    assert added.status_code == 202
    assert len(Analysis.objects.get(pk=analysis.pk).connections) == len(analysis.connections) + 1
    # ... but only the owner decides who sees it
    assert (
        colleague.post(f"/api/v1/analyses/{analysis.slug}/sharing/", {"public": True}, format="json").status_code == 403
    )


def test_sharing_with_a_team_you_are_not_in_is_refused(analysis: Analysis, api: APIClient, other_user: User) -> None:
    Team.objects.create(name="not-mine").members.add(other_user)

    response = api.post(f"/api/v1/analyses/{analysis.slug}/sharing/", {"teams": ["not-mine"]}, format="json")

    assert response.status_code == 400
    assert response.json()["errors"][0] == {
        "source": "teams",
        "line": 0,
        "column": 0,
        "text": "",
        "message": "not a team of yours: not-mine",
    }
    assert not analysis.teams.exists()


def test_public_permalink_is_readable_by_anyone_but_not_writable(
    analysis: Analysis, api: APIClient, other_user: User, anon_client: Client
) -> None:
    assert api.post(f"/api/v1/analyses/{analysis.slug}/sharing/", {"public": True}, format="json").json()["public"]

    assert anon_client.get(analysis.permalink_path).status_code == 200
    assert APIClient().get(f"/api/v1/analyses/{analysis.slug}/fix/").status_code == 200
    stranger = bot_for(other_user)
    assert stranger.get(f"/api/v1/analyses/{analysis.slug}/").status_code == 200
    written = stranger.post(f"/api/v1/analyses/{analysis.slug}/connections/", NEW_CONNECTION, format="json")
    assert written.status_code == 403
    assert written.json()["errors"][0]["message"] == "this analysis is shared read-only with you"
    assert APIClient().post(f"/api/v1/analyses/{analysis.slug}/rerun/").status_code == 401
    # a public analysis is not listed for strangers: it is reached through its permalink
    assert stranger.get("/api/v1/analyses/").json()["results"] == []


def test_owner_toggles_public_and_teams_on_the_page(analysis: Analysis, user: User, anon_client: Client) -> None:
    team = Team.objects.create(name="sre")
    team.members.add(user)
    owner = browser_for(user)
    page = owner.get(analysis.permalink_path).content.decode()
    assert 'action="/a/' + analysis.slug + '/sharing/"' in page

    owner.post(f"/a/{analysis.slug}/sharing/", {"public": "on", "teams": [str(team.pk)]})

    analysis.refresh_from_db()
    assert analysis.public and list(analysis.teams.all()) == [team]
    assert "public, read-only" in anon_client.get(analysis.permalink_path).content.decode()
    owner.post(f"/a/{analysis.slug}/sharing/", {})
    analysis.refresh_from_db()
    assert not analysis.public and not analysis.teams.exists()


def test_new_analysis_pages_need_a_login(anon_client: Client, create: Callable[..., Any]) -> None:
    assert anon_client.get("/new/")["Location"] == "/login/?next=/new/"
    assert anon_client.post("/new/example/redirect-app-sees-127.0.0.6/").status_code == 302
    assert Analysis.objects.count() == 0
