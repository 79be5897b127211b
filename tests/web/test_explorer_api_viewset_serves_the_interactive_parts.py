"""meshviz.web.explorer_api.ExplorerViewSet (for the lead to register on the API router) answers the rule table,
a rule, the composer, a what-if and a diff for a reader of the analysis, 400 with errors for bad input and 404 for
an analysis the caller may not read. Called through `as_view`, so the test does not depend on the registration."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIRequestFactory, force_authenticate

from meshviz.web.explorer_api import ExplorerViewSet
from tests.web.explorer_support import POLICY_ROUTE_EDITS, REDIRECT, analysed_example, explorer_user

pytestmark = pytest.mark.django_db

factory = APIRequestFactory()


def _call(user: User, action: str, method: str, path: str, data: Any = None, **kwargs: Any) -> Any:
    view = ExplorerViewSet.as_view({method: action})
    request = getattr(factory, method)(path, data, format="json" if method == "post" else None)
    force_authenticate(request, user=user)
    return view(request, **kwargs)


def test_viewset_actions() -> None:
    user = explorer_user()
    analysis = analysed_example(user)
    slug = analysis.slug

    rules = _call(user, "rules", "get", "/x/", {"target": "TPROXY"}, slug=slug)
    assert (
        rules.status_code == 200 and rules.data["rules"] and all(r["target"] == "TPROXY" for r in rules.data["rules"])
    )
    first = rules.data["rules"][0]
    rule = _call(user, "rule", "get", "/x/", slug=slug, table=first["table"], chain=first["chain"], index="1")
    assert rule.status_code == 200 and rule.data["rule"]["explanation"] == first["explanation"]

    traced = _call(user, "compose", "get", "/x/", {"dport": "8083"}, slug=slug)
    assert traced.status_code == 200 and traced.data["traces"][0]["disposition"] == "ACCEPTED_TO_SOCKET"
    bad = _call(user, "compose", "get", "/x/", {"src": "nope"}, slug=slug)
    assert bad.status_code == 400 and bad.data["errors"][0]["source"] == "src"

    fixed = _call(user, "whatif", "post", "/x/", {"edits": POLICY_ROUTE_EDITS}, slug=slug)
    assert fixed.status_code == 200 and fixed.data["diff"][0]["changed"]
    wrong = _call(user, "whatif", "post", "/x/", {"edits": [{"op": "nope"}]}, slug=slug)
    assert wrong.status_code == 400 and wrong.data["errors"][0]["source"] == "edit 1"

    other = analysed_example(user, REDIRECT)
    diff = _call(user, "diff", "get", "/x/", slug=other.slug, other=slug)
    assert diff.status_code == 200 and diff.data["verdicts_changed"] >= 1

    stranger = explorer_user("stranger")
    assert _call(stranger, "rules", "get", "/x/", slug=slug).status_code == 404
