"""Every state-changing page takes POST only and checks the CSRF token (Client(enforce_csrf_checks=True)); the API
checks it for session-authenticated requests (DRF SessionAuthentication), not for API keys.

The POST routes come from the review matrix (test_no_view_leaks_a_private_object.matrix), so a new POST page is
covered automatically; here alice, the owner, is the one sending them, without a token.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from meshviz.accounts.models import ApiKey, Team
from meshviz.analyses.models import Analysis
from meshviz.clusters.models import Cluster, CollectionJob, WatchedPod
from tests.review.support import World, snapshot
from tests.review.test_no_view_leaks_a_private_object import Req, matrix

pytestmark = pytest.mark.django_db


def _counts() -> dict[str, int]:
    return {m.__name__: m.objects.count() for m in (Analysis, Cluster, CollectionJob, WatchedPod, ApiKey, Team, User)}


def _owner_posts(w: World) -> list[Req]:
    """The matrix's page POSTs aimed at alice's own objects plus the ones that create things (no duplicates)."""
    seen, out = set(), []
    for req in matrix(w):
        if req.api or req.method != "POST" or req.path in seen:
            continue
        if w.public.slug in req.path or w.mine.slug in req.path:
            continue
        seen.add(req.path)
        out.append(req)
    return out


def _csrf_client(user: User) -> Client:
    c = Client(enforce_csrf_checks=True)
    c.force_login(user)
    return c


def test_every_page_post_without_a_csrf_token_is_403_and_changes_nothing(world: World) -> None:
    posts = _owner_posts(world)
    assert len(posts) >= 15, [str(p) for p in posts]
    client = _csrf_client(world.alice)
    before, counts = snapshot(world), _counts()
    wrong = []
    for req in posts:
        response = client.post(req.path, req.data)
        if response.status_code != 403:
            wrong.append(f"{req}: {response.status_code}")
    assert not wrong, wrong
    assert snapshot(world) == before and _counts() == counts
    # and alice is still logged in (logout needs the token too)
    assert client.get("/account/").status_code == 200


def test_login_needs_the_csrf_token(world: World) -> None:
    world.alice.set_password("alice-pw-123456")
    world.alice.save()
    c = Client(enforce_csrf_checks=True)
    assert c.post("/login/", {"username": "alice", "password": "alice-pw-123456"}).status_code == 403
    assert "_auth_user_id" not in c.session


def test_post_only_pages_refuse_get(world: World) -> None:
    client = _csrf_client(world.alice)
    before, counts = snapshot(world), _counts()
    get_ok = {"/new/", "/new/bug-report/", "/clusters/", "/watched-pods/", "/login/"}  # forms served by GET
    wrong = []
    for req in _owner_posts(world):
        if req.path in get_ok:
            continue
        response = client.get(req.path, req.data)
        if response.status_code != 405:
            wrong.append(f"GET {req.path}: {response.status_code}")
    assert not wrong, wrong
    assert snapshot(world) == before and _counts() == counts


def test_with_the_token_the_same_post_works(world: World) -> None:
    """Control: the 403s above are CSRF, not something else."""
    client = _csrf_client(world.alice)
    client.get(f"/a/{world.private.slug}/")
    token = client.cookies["csrftoken"].value
    response = client.post(f"/a/{world.private.slug}/sharing/", {"public": "on", "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert Analysis.objects.get(pk=world.private.pk).public


def _api_posts(w: World) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        ("POST", f"/api/v1/analyses/{w.private.slug}/rerun/", {}),
        ("POST", f"/api/v1/analyses/{w.private.slug}/sharing/", {"public": True}),
        ("POST", f"/api/v1/analyses/{w.private.slug}/connections/", {"client": "10.1.1.1:1", "port": 8083}),
        ("POST", f"/api/v1/clusters/{w.cluster.pk}/check/", {}),
        ("POST", f"/api/v1/collections/{w.job.pk}/recollect/", {}),
        ("PATCH", f"/api/v1/watched-pods/{w.watched.pk}/", {"enabled": False}),
        ("DELETE", f"/api/v1/watched-pods/{w.watched.pk}/", {}),
        ("DELETE", f"/api/v1/clusters/{w.cluster.pk}/", {}),
        ("POST", "/api/v1/watched-pods/", {"cluster": w.cluster.pk, "namespace": "default", "pod": "p"}),
    ]


def test_the_api_checks_csrf_for_a_browser_session(world: World) -> None:
    import json

    client = _csrf_client(world.alice)
    before, counts = snapshot(world), _counts()
    wrong = []
    for method, path, data in _api_posts(world):
        response = client.generic(method, path, json.dumps(data), content_type="application/json")
        if response.status_code != 403:
            wrong.append(f"{method} {path}: {response.status_code}")
    assert not wrong, wrong
    assert snapshot(world) == before and _counts() == counts


def test_an_api_key_needs_no_csrf_token(world: World) -> None:
    c = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Api-Key {world.key_plaintext}")
    response = c.post(
        f"/api/v1/analyses/{world.private.slug}/sharing/", {"public": True}, content_type="application/json"
    )
    assert response.status_code == 200 and response.json()["public"] is True
