"""The explorer's JSON is served under /api/v1/explorer/ on the same router, to a bot with an API key, and keeps
analyses private like the rest of the API."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from meshviz.accounts.models import ApiKey
from tests.web.explorer_support import POLICY_ROUTE_EDITS, analysed_example, explorer_user

pytestmark = pytest.mark.django_db


def bot(name: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {ApiKey.issue(explorer_user(name), 'bot')[1]}")
    return api


def test_bot_reads_rules_and_runs_a_whatif_through_the_router() -> None:
    owner = bot("owner")
    analysis = analysed_example(ApiKey.objects.get(name="bot").user)
    base = f"/api/v1/explorer/{analysis.slug}/"

    rules = owner.get(base + "rules/", {"target": "TPROXY"})
    whatif = owner.post(base + "whatif/", {"edits": POLICY_ROUTE_EDITS}, format="json")

    assert rules.status_code == 200 and {r["target"] for r in rules.json()["rules"]} == {"TPROXY"}
    assert whatif.status_code == 200, whatif.content
    assert any(change["changed"] for change in whatif.json()["diff"])
    hidden = bot("stranger").get(base + "rules/")
    assert hidden.status_code == 404 and hidden.json()["errors"][0]["source"] == "request"
    assert APIClient().get(base + "rules/").status_code == 404
    assert APIClient().post(base + "whatif/", {"edits": POLICY_ROUTE_EDITS}, format="json").status_code == 401
