"""The explorer's JSON is served as nested resources of the analysis (/api/v1/analyses/{slug}/rules/, traces/,
what-ifs/, diffs/{other}/) to a bot with an API key, keeps analyses private like the rest of the API, and the
previous release's /api/v1/explorer/ paths redirect there with method and body kept."""

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
    base = f"/api/v1/analyses/{analysis.slug}/"

    rules = owner.get(base + "rules/", {"target": "TPROXY"})
    whatif = owner.post(base + "what-ifs/", {"edits": POLICY_ROUTE_EDITS}, format="json")

    assert rules.status_code == 200 and {r["target"] for r in rules.json()["rules"]} == {"TPROXY"}
    assert whatif.status_code == 200, whatif.content
    assert any(change["changed"] for change in whatif.json()["diff"])
    hidden = bot("stranger").get(base + "rules/")
    assert hidden.status_code == 404 and hidden.json()["errors"][0]["source"] == "request"
    assert APIClient().get(base + "rules/").status_code == 404
    assert APIClient().post(base + "what-ifs/", {"edits": POLICY_ROUTE_EDITS}, format="json").status_code == 401


def test_the_previous_releases_explorer_paths_redirect_with_method_and_query_kept() -> None:
    owner = bot("owner")
    analysis = analysed_example(ApiKey.objects.get(name="bot").user)
    slug = analysis.slug
    moved = {
        f"/api/v1/explorer/{slug}/rules/?target=TPROXY": f"/api/v1/analyses/{slug}/rules/?target=TPROXY",
        f"/api/v1/explorer/{slug}/rules/mangle/ISTIO_INBOUND/1/": f"/api/v1/analyses/{slug}/rules/mangle/ISTIO_INBOUND/1/",
        f"/api/v1/explorer/{slug}/compose/?dport=8080": f"/api/v1/analyses/{slug}/traces/?dport=8080",
        f"/api/v1/explorer/{slug}/diff/{slug}/": f"/api/v1/analyses/{slug}/diffs/{slug}/",
    }
    for old, new in moved.items():
        response = owner.get(old)
        assert (response.status_code, response["Location"]) == (308, new), old
    post = owner.post(f"/api/v1/explorer/{slug}/whatif/", {"edits": POLICY_ROUTE_EDITS}, format="json")
    assert (post.status_code, post["Location"]) == (308, f"/api/v1/analyses/{slug}/what-ifs/")
    followed = owner.post(post["Location"], {"edits": POLICY_ROUTE_EDITS}, format="json")
    assert followed.status_code == 200 and any(change["changed"] for change in followed.json()["diff"])
    assert owner.get(f"/api/v1/explorer/{slug}/nothing-here/").status_code == 404
