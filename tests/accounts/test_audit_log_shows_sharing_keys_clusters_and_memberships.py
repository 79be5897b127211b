"""The owner sees an audit log of sharing, API keys, clusters, memberships and deletions on /account/."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from meshviz.accounts.models import ApiKey, AuditEvent, Team, TeamInvitation
from meshviz.analyses import services
from tests.analyses.helpers import POD_IP, REDIRECT_RULES
from tests.clusters.helpers import kubeconfig_for

pytestmark = pytest.mark.django_db


def test_every_kind_of_change_is_in_the_owners_log(user: User, other_user: User, settings: Any) -> None:
    settings.MESHVIZ_ENCRYPTION_KEY = Fernet.generate_key().decode()
    client = Client()
    client.force_login(user)
    client.post("/account/keys/", {"name": "bot"})
    key = ApiKey.objects.get(user=user)
    client.post(f"/account/keys/{key.prefix}/revoke/")
    client.post("/account/teams/", {"name": "sre"})
    team = Team.objects.get(name="sre")
    client.post(f"/account/teams/{team.pk}/members/", {"username": other_user.username})
    invitee = Client()
    invitee.force_login(other_user)
    invitee.post(f"/account/invitations/{TeamInvitation.objects.get().pk}/accept/")
    analysis = services.create_analysis(iptables=REDIRECT_RULES, pod_ip=POD_IP, owner=user)
    client.post(f"/a/{analysis.slug}/sharing/", {"public": "on", "teams": [str(team.pk)]})
    client.post("/clusters/", {"name": "kind", "kubeconfig": kubeconfig_for("https://34.120.0.7:6443")})
    client.post(f"/a/{analysis.slug}/delete/")

    actions = list(AuditEvent.objects.filter(user=user).order_by("id").values_list("action", flat=True))
    assert actions == [
        "key.create",
        "key.revoke",
        "team.create",
        "team.invite",
        "team.join",
        "analysis.share",
        "cluster.create",
        "analysis.delete",
    ]
    page = client.get("/account/").content.decode()
    for action in actions:
        assert f"<code>{action}</code>" in page
    api = APIClient()
    api.force_authenticate(user)
    listed = api.get("/api/v1/audit/").json()
    assert [e["action"] for e in listed] == list(reversed(actions))
    assert listed[0]["actor"] == user.username and listed[0]["subject"].startswith("analysis ")
    assert APIClient().get("/api/v1/audit/").status_code == 401
    # the invitee's own log has the invitation and their joining; nothing of the owner's keys
    theirs = set(AuditEvent.objects.filter(user=other_user).values_list("action", flat=True))
    assert theirs == {"team.invite", "team.join"}
