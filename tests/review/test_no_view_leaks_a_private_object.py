"""Security review: every URL pattern of meshviz.urls, requested by a second user (mallory, logged in, no shared
team; by session and by API key) and by an anonymous client, against alice's private analysis, her analysis shared
with her team, her public analysis, her cluster, collection and watched pod, and her account's team and API key.

* a private object is a 404 for mallory (pages and API) - never 200 with data, never 500;
* an anonymous client gets a login redirect or a 404 on pages, 401 or 404 from the API - never data;
* the public analysis is readable by anyone, but nothing about it can be changed by anyone but alice
  (mallory's what-if save makes a copy that is hers, the explorer API's what-if computes and stores nothing);
* a diff of the public analysis with a private one never shows the private one;
* nothing of alice's changes (a snapshot taken before is compared after);
* no response carries alice's marker strings, her API key's plaintext or the kubeconfig's token.

`test_every_url_pattern_is_exercised` fails when a URL pattern is added without a row here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.test import Client
from django.urls import resolve

from meshviz.analyses.models import Analysis
from tests.review.support import EDITS, MARKER, TEAM_NAME, World, all_routes, snapshot
from tests.web.explorer_support import MISSING_ROUTE

pytestmark = pytest.mark.django_db

#: what a request is aimed at
PRIVATE = "private"  # one of alice's private objects (analysis, shared analysis, cluster, job, watched pod, team, key)
PUBLIC_READ = "public-read"  # reading alice's public analysis
PUBLIC_WRITE = "public-write"  # changing alice's public analysis
PUBLIC_FORK = "public-fork"  # a what-if of the public analysis: a copy for the caller (mallory) / computed only
MIXED = "mixed"  # the public analysis together with a private one (diff)
NONE = "none"  # no object of alice's: lists, forms, the caller's own things


@dataclass
class Req:
    method: str
    path: str
    target: str
    data: dict[str, Any] = field(default_factory=dict)
    api: bool = False
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def route(self) -> str:
        return resolve(self.path.split("?", 1)[0]).route

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _analysis_requests(slug: str, w: World, target_read: str, target_write: str, target_fork: str) -> list[Req]:
    """Every analysis-level page and API route for `slug`."""
    r = target_read
    wr = target_write
    mine, pub = w.mine.slug, w.public.slug
    reqs = [
        # pages
        Req("GET", f"/a/{slug}/", r),
        Req("GET", f"/a/{slug}/card.png", r),
        Req("GET", f"/a/{slug}/compare/1.svg", r),
        Req("POST", f"/a/{slug}/sharing/", wr, {"public": "on", "teams": [str(w.team.pk)]}),
        Req("POST", f"/a/{slug}/rerun/", wr),
        Req("POST", f"/a/{slug}/delete/", wr),
        Req("GET", f"/a/{slug}/diagram/1.svg", r),
        Req("GET", f"/a/{slug}/diagram/1.png", r),
        Req("GET", f"/a/{slug}/fix/1/1.txt", r),
        Req("GET", f"/a/{slug}/structure/", r),
        Req("GET", f"/a/{slug}/structure/?family=ipv4", r),
        Req("GET", f"/a/{slug}/rules/", r),
        Req("GET", f"/a/{slug}/rules/?format=json", r),
        Req("GET", f"/a/{slug}/rules/mangle/ISTIO_INBOUND/1", r),
        Req("GET", f"/a/{slug}/rules/mangle/ISTIO_INBOUND/1?format=json", r),
        Req("GET", f"/a/{slug}/rules/mangle/ISTIO_INBOUND/1?fragment=1", r),
        Req("GET", f"/a/{slug}/compose/", r),
        Req("GET", f"/a/{slug}/compose/?format=json", r),
        Req("GET", f"/a/{slug}/compose/?fragment=1", r),
        Req("GET", f"/a/{slug}/whatif/?edits={EDITS}", r),
        Req("GET", f"/a/{slug}/whatif/?edits={EDITS}&format=json", r),
        Req("GET", f"/a/{slug}/whatif/patch.txt?edits={EDITS}", r),
        Req("POST", f"/a/{slug}/whatif/save/", target_fork, {"edits": EDITS}),
        Req("GET", f"/a/{slug}/diff/", r),
        # API
        Req("GET", f"/api/v1/analyses/{slug}/", r, api=True),
        Req("GET", f"/api/v1/analyses/{slug}/comparison/", r, api=True),
        Req("GET", f"/api/v1/analyses/{slug}/fix/", r, api=True),
        Req("GET", f"/api/v1/analyses/{slug}/sharing/", wr, api=True),
        Req("GET", f"/api/v1/analyses/{slug}/diagram.svg", r, api=True),
        Req("GET", f"/api/v1/analyses/{slug}/diagram.png?connection=1", r, api=True),
        Req("POST", f"/api/v1/analyses/{slug}/connections/", wr, {"client": "10.9.9.9:4000", "port": 8083}, api=True),
        Req("POST", f"/api/v1/analyses/{slug}/rerun/", wr, api=True),
        Req("DELETE", f"/api/v1/analyses/{slug}/", wr, api=True),
        Req("POST", f"/api/v1/analyses/{slug}/sharing/", wr, {"public": True, "teams": [TEAM_NAME]}, api=True),
        Req("GET", f"/api/v1/analyses/{slug}/rules/", r, api=True),
        Req("GET", f"/api/v1/analyses/{slug}/summary?format=slack", r, api=True),
        Req("GET", f"/api/v1/analyses/{slug}/verdicts/", r, api=True),
        Req("GET", f"/api/v1/analyses/{slug}/comparison/diagram.svg?connection=1", r, api=True),
        Req("GET", f"/api/v1/analyses/{slug}/rules/mangle/ISTIO_INBOUND/1/", r, api=True),
        Req("GET", f"/api/v1/analyses/{slug}/traces/", r, api=True),
        Req("POST", f"/api/v1/analyses/{slug}/what-ifs/", target_fork, {"edits": json.loads(EDITS)}, api=True),
        # the browsable API (text/html) must not render the object either
        Req("GET", f"/api/v1/analyses/{slug}/", r, api=True, headers={"HTTP_ACCEPT": "text/html"}),
        Req("GET", f"/api/v1/analyses/{slug}/rules/", r, api=True, headers={"HTTP_ACCEPT": "text/html"}),
    ]
    if slug != pub:
        # diffs between this analysis and one the caller may read (mallory's own, the public one)
        reqs += [
            Req("GET", f"/a/{slug}/diff/?other={mine}", r),
            Req("GET", f"/diff/{slug}/{mine}/", r),
            Req("GET", f"/diff/{mine}/{slug}/", r),
            Req("GET", f"/diff/{mine}/{slug}/?format=json", r),
            Req("GET", f"/a/{mine}/diff/?other={slug}", r),
            Req("GET", f"/a/{mine}/diff/?other=/a/{slug}/", r),
            Req("GET", f"/api/v1/analyses/{slug}/diffs/{mine}/", r, api=True),
            Req("GET", f"/api/v1/analyses/{mine}/diffs/{slug}/", r, api=True),
            # the public analysis with a private one: must not leak the private one
            Req("GET", f"/diff/{pub}/{slug}/", MIXED),
            Req("GET", f"/diff/{slug}/{pub}/", MIXED),
            Req("GET", f"/diff/{pub}/{slug}/?format=json", MIXED),
            Req("GET", f"/a/{pub}/diff/?other={slug}", MIXED),
            Req("GET", f"/api/v1/analyses/{pub}/diffs/{slug}/", MIXED, api=True),
            Req("GET", f"/api/v1/analyses/{slug}/diffs/{pub}/", MIXED, api=True),
        ]
    return reqs


def matrix(w: World) -> list[Req]:
    c, j, wp = w.cluster.pk, w.job.pk, w.watched.pk
    ns, pod = "default", "productpage-v1-abc"
    reqs: list[Req] = []
    for a in (w.private, w.shared):
        reqs += _analysis_requests(a.slug, w, PRIVATE, PRIVATE, PRIVATE)
    reqs += _analysis_requests(w.public.slug, w, PUBLIC_READ, PUBLIC_WRITE, PUBLIC_FORK)
    reqs += [
        # the previous release's explorer path: a redirect computed from the path alone (it reads nothing)
        Req("GET", f"/api/v1/explorer/{w.private.slug}/rules/", NONE),
        Req("GET", "/favicon.ico", NONE),
        # a redirect computed from the path alone, like the explorer's old paths
        Req("GET", f"/api/v1/analyses/{w.private.slug}/summary/?format=text", NONE),
        # alice's cluster, collection and watched pod: pages
        Req("GET", f"/clusters/{c}/", PRIVATE),
        Req("POST", f"/clusters/{c}/check/", PRIVATE),
        Req("GET", f"/clusters/{c}/namespaces/{ns}/", PRIVATE),
        Req("GET", f"/clusters/{c}/namespaces/{ns}/?all=1", PRIVATE),
        Req("POST", f"/clusters/{c}/collect/", PRIVATE, {"namespace": ns, "pod": pod}),
        Req("POST", f"/clusters/{c}/watch/", PRIVATE, {"namespace": ns, "pod": pod, "interval_minutes": "5"}),
        Req("GET", f"/collections/{j}/", PRIVATE),
        Req("POST", f"/collections/{j}/recollect/", PRIVATE),
        Req("POST", "/watched-pods/", PRIVATE, {"id": str(wp), "op": "toggle"}),
        Req("POST", "/watched-pods/", PRIVATE, {"id": str(wp), "op": "acknowledge"}),
        Req("POST", "/watched-pods/", PRIVATE, {"id": str(wp), "op": "delete"}),
        Req("POST", f"/clusters/{c}/delete/", PRIVATE),
        # ... and the API
        Req("GET", f"/api/v1/clusters/{c}/", PRIVATE, api=True),
        Req("POST", f"/api/v1/clusters/{c}/check/", PRIVATE, api=True),
        Req("GET", f"/api/v1/clusters/{c}/namespaces/", PRIVATE, api=True),
        Req("GET", f"/api/v1/clusters/{c}/namespaces/{ns}/pods/", PRIVATE, api=True),
        Req("GET", f"/api/v1/clusters/{c}/pods/?namespace={ns}", PRIVATE, api=True),
        Req("GET", f"/api/v1/collections/{j}/", PRIVATE, api=True),
        Req("POST", f"/api/v1/collections/{j}/recollect/", PRIVATE, api=True),
        Req("POST", "/api/v1/collections/", PRIVATE, {"cluster": c, "namespace": ns, "pod": pod}, api=True),
        Req("POST", "/api/v1/watched-pods/", PRIVATE, {"cluster": c, "namespace": ns, "pod": pod}, api=True),
        Req("GET", f"/api/v1/watched-pods/{wp}/", PRIVATE, api=True),
        Req("PATCH", f"/api/v1/watched-pods/{wp}/", PRIVATE, {"enabled": False, "interval_minutes": 1}, api=True),
        Req("DELETE", f"/api/v1/watched-pods/{wp}/", PRIVATE, api=True),
        Req("DELETE", f"/api/v1/clusters/{c}/", PRIVATE, api=True),
        # alice's API key and team
        Req("POST", f"/account/keys/{w.key.prefix}/revoke/", PRIVATE),
        Req("POST", f"/account/teams/{w.team.pk}/members/", PRIVATE, {"username": w.mallory.username}),
        Req("POST", f"/account/teams/{w.team.pk}/leave/", PRIVATE),
        Req("POST", f"/account/invitations/{w.invitation.pk}/accept/", PRIVATE),
        Req("GET", "/api/v1/audit/", NONE, api=True),
        # no object of alice's: the caller's lists and forms
        Req("GET", "/", NONE),
        Req("GET", "/healthz", NONE),
        Req("GET", "/new/", NONE),
        Req("POST", "/new/", NONE, {"iptables": "", "pod_ip": "not-an-ip"}),
        Req("POST", f"/new/example/{MISSING_ROUTE}/", NONE),
        Req("GET", "/clusters/", NONE),
        Req("POST", "/clusters/", NONE, {"name": "mine", "kubeconfig": "not: [a kubeconfig"}),
        Req("GET", "/watched-pods/", NONE),
        Req("GET", "/account/", NONE),
        Req("POST", "/account/keys/", NONE, {"name": "mallory's key"}),
        Req("POST", "/account/teams/", NONE, {"name": TEAM_NAME}),  # the name is taken
        Req("GET", "/login/", NONE),
        Req("GET", "/api/schema/", NONE),
        Req("GET", "/api/docs/", NONE),
        Req("GET", "/api/v1/analyses/", NONE, api=True),
        Req("POST", "/api/v1/analyses/", NONE, {"iptables": "garbage", "pod_ip": "10.0.0.1"}, api=True),
        Req("GET", "/api/v1/clusters/", NONE, api=True),
        Req("POST", "/api/v1/clusters/", NONE, {"name": "m", "kubeconfig": "not: [yaml"}, api=True),
        Req("GET", "/api/v1/collections/", NONE, api=True),
        Req("GET", f"/api/v1/collections/?cluster={c}", NONE, api=True),
        Req("GET", f"/api/v1/collections/?pod={w.job.pod}", NONE, api=True),
        Req("GET", "/api/v1/watched-pods/", NONE, api=True),
        # evidence from where users have it: the collector script, bug-report archives (an unknown token, no archive)
        Req("GET", "/collect/", NONE),
        Req("GET", "/collect.sh", NONE),
        Req("GET", "/new/bug-report/", NONE),
        Req("POST", "/new/bug-report/", NONE, {"token": "0" * 32, "pods": ["hr2/geo"]}),
        Req("POST", "/api/v1/bug-reports/", NONE, {"pods": ["hr2/geo"]}, api=True),
        Req("POST", "/logout/", NONE),  # last: it ends the session (the runner logs back in)
    ]
    return reqs


# --------------------------------------------------------------------------
# running the matrix
# --------------------------------------------------------------------------


def _send(client: Client, req: Req) -> Any:
    kwargs: dict[str, Any] = dict(req.headers)
    if req.method == "GET":
        return client.get(req.path, **kwargs)
    if req.method == "DELETE":
        return client.delete(req.path, **kwargs)
    if req.api:
        return client.generic(req.method, req.path, json.dumps(req.data), content_type="application/json", **kwargs)
    return client.post(req.path, req.data, **kwargs)


def _login_redirect(response: Any) -> bool:
    return response.status_code == 302 and response["Location"].startswith("/login/")


def _body(response: Any) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode("utf-8", "replace")
    return response.content.decode("utf-8", "replace")


def _secrets_in(w: World, req: Req, response: Any) -> list[str]:
    """Alice's secrets in the response (body and headers). A slug or key prefix the caller put in the URL
    itself is not a secret to them (404 pages, the browsable API and login redirects echo the path)."""
    body = _body(response).lower() + " " + " ".join(f"{k}: {v}" for k, v in response.items()).lower()
    found = []
    for name, secret in (
        ("alice's private marker", MARKER),
        ("alice's private slug", w.private.slug),
        ("alice's team-shared slug", w.shared.slug),
        ("alice's API key", w.key_plaintext),
        ("alice's API key prefix", w.key.prefix),
        ("the kubeconfig token", w.kube_token),
    ):
        if secret in req.path and secret != MARKER:
            continue
        if secret.lower() in body:
            found.append(name)
    return found


def _judge(actor: str, req: Req, response: Any, w: World) -> str | None:
    """None when the response is acceptable for `actor` (anon / mallory), else what is wrong."""
    status = response.status_code
    if status >= 500:
        return f"{status} (server error)"
    leaked = _secrets_in(w, req, response)
    if leaked and _login_redirect(response) and MARKER in req.path:
        leaked = [s for s in leaked if s != "alice's private marker"]  # ?next= echoes the caller's own URL
    if leaked:
        return f"{status} with {', '.join(leaked)} in the response"
    anon = actor == "anon"
    t = req.target
    if t in (PRIVATE, MIXED):
        if anon:
            ok = status in (401, 404) if req.api else (_login_redirect(response) or status == 404)
        else:
            ok = status == 404
        return None if ok else f"{status}, expected {'401/404' if anon and req.api else 'login/404' if anon else 404}"
    if t == PUBLIC_READ:
        return None if status in (200,) else f"{status}, expected 200 (public, readable by anyone)"
    if t == PUBLIC_WRITE:
        if anon:
            ok = status == 401 if req.api else _login_redirect(response)
        else:
            ok = status in (403, 404)
        return None if ok else f"{status}, expected {'401' if anon and req.api else 'login' if anon else '403/404'}"
    if t == PUBLIC_FORK:
        if anon:
            ok = status == 401 if req.api else _login_redirect(response)
        else:
            ok = status == 200 if req.api else status == 302
        return None if ok else f"{status} (what-if of the public analysis)"
    # NONE: anything but an error; anonymous API lists are 401
    if anon and req.api and req.method == "GET":
        return None if status == 401 else f"{status}, expected 401"
    if anon and not req.api and req.method != "GET" and req.path != "/logout/":
        return None if _login_redirect(response) or status in (403, 405) else f"{status}, expected login"
    return None


def _run(actor: str, make_client: Callable[[], Client], w: World) -> list[str]:
    before = snapshot(w)
    problems = []
    client = make_client()
    for req in matrix(w):
        response = _send(client, req)
        problem = _judge(actor, req, response, w)
        if problem:
            problems.append(f"{req}: {problem}")
        if req.path == "/logout/":
            client = make_client()
    after = snapshot(w)
    for key in before:
        if before[key] != after[key]:
            problems.append(f"alice's {key} changed: {before[key]!r} -> {after[key]!r}")
    return problems


def test_every_url_pattern_is_exercised(world: World) -> None:
    covered = {req.route for req in matrix(world)}
    missing = [r for r in all_routes() if not r.startswith("admin/") and r not in covered]
    assert not missing, "URL patterns without a row in matrix():\n" + "\n".join(missing)


def test_a_second_user_gets_404_for_every_private_object_and_changes_nothing(world: World) -> None:
    def mallory() -> Client:
        c = Client(raise_request_exception=False)
        c.force_login(world.mallory)
        return c

    problems = _run("mallory", mallory, world)
    assert not problems, "\n".join(problems)


def test_a_second_users_api_key_gets_404_for_every_private_object(world: World) -> None:
    def bot() -> Client:
        return Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Api-Key {world.mallory_key}")

    # an API key authenticates the API only; the pages see an anonymous visitor
    problems = []
    before = snapshot(world)
    client = bot()
    for req in matrix(world):
        if not req.api:
            continue
        problem = _judge("mallory", req, _send(client, req), world)
        if problem:
            problems.append(f"{req}: {problem}")
    after = snapshot(world)
    problems += [f"alice's {k} changed" for k in before if before[k] != after[k]]
    assert not problems, "\n".join(problems)


def test_an_anonymous_client_gets_login_or_401_or_404_and_changes_nothing(world: World) -> None:
    problems = _run("anon", lambda: Client(raise_request_exception=False), world)
    assert not problems, "\n".join(problems)


def test_mallorys_lists_show_only_her_own_things(world: World) -> None:
    c = Client()
    c.force_login(world.mallory)
    slugs = {a["slug"] for a in c.get("/api/v1/analyses/").json()["results"]}
    assert slugs == set(Analysis.objects.filter(owner=world.mallory).values_list("slug", flat=True))
    assert c.get("/api/v1/clusters/").json() == []
    assert c.get(f"/api/v1/collections/?cluster={world.cluster.pk}").json() == []
    assert c.get("/api/v1/watched-pods/").json() == []
    home = c.get("/").content.decode()
    assert world.mine.slug in home and world.public.slug not in home and MARKER not in home.lower()


def test_mallorys_what_if_of_the_public_analysis_is_a_private_copy_of_her_own(world: World) -> None:
    c = Client()
    c.force_login(world.mallory)
    before = snapshot(world)
    response = c.post(f"/a/{world.public.slug}/whatif/save/", {"edits": EDITS})
    assert response.status_code == 302
    copy = Analysis.objects.get(slug=response["Location"].strip("/").rsplit("/", 1)[-1])
    assert copy.owner == world.mallory and not copy.public and copy.derived_from == world.public
    assert not copy.teams.exists()
    assert snapshot(world)["public"] == before["public"]
    # the copy is hers alone: alice cannot see it (only its owner and teams can)
    alice = Client()
    alice.force_login(world.alice)
    assert alice.get(copy.permalink_path).status_code == 404


def test_the_team_shared_analysis_is_readable_and_writable_by_a_member_only(world: World) -> None:
    """Sanity for the matrix: what mallory is refused, a member of alice's team gets."""
    from django.contrib.auth.models import User

    bob = User.objects.create_user("bob")
    world.team.members.add(bob)
    c = Client()
    c.force_login(bob)
    assert c.get(f"/a/{world.shared.slug}/").status_code == 200
    assert c.get(f"/a/{world.private.slug}/").status_code == 404
    assert c.post(f"/a/{world.shared.slug}/rerun/").status_code == 302
    assert c.post(f"/a/{world.shared.slug}/sharing/", {"public": "on"}).status_code == 403
    assert not Analysis.objects.get(pk=world.shared.pk).public
    assert c.get(f"/diff/{world.public.slug}/{world.shared.slug}/").status_code == 200
    assert c.get(f"/diff/{world.public.slug}/{world.private.slug}/").status_code == 404


def test_the_matrix_catches_a_broken_access_check(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Self-test: with `can_read` answering yes to everyone, the runner reports leaks (so its passing means something)."""
    from meshviz.analyses import access

    monkeypatch.setattr(access, "can_read", lambda user, analysis: True)

    def mallory() -> Client:
        c = Client(raise_request_exception=False)
        c.force_login(world.mallory)
        return c

    problems = _run("mallory", mallory, world)
    assert any(f"GET /a/{world.private.slug}/: 200" in p for p in problems), problems
    assert any("diff" in p and world.private.slug in p for p in problems), problems


def test_format_suffix_urls_are_a_plain_404_not_a_500(world: World) -> None:
    """The router has no `<route>.json` variants (their views took no `format` argument and crashed)."""
    alice = Client(raise_request_exception=False)
    alice.force_login(world.alice)
    anon = Client(raise_request_exception=False)
    statuses = {
        "owner GET analysis.json": alice.get(f"/api/v1/analyses/{world.private.slug}.json").status_code,
        "owner GET analyses.json": alice.get("/api/v1/analyses.json").status_code,
        "owner GET explorer rules.json": alice.get(f"/api/v1/analyses/{world.private.slug}/rules.json").status_code,
        "owner GET clusters/<pk>.json": alice.get(f"/api/v1/clusters/{world.cluster.pk}.json").status_code,
        "anonymous GET private analysis.json": anon.get(f"/api/v1/analyses/{world.private.slug}.json").status_code,
    }
    assert set(statuses.values()) == {404}, statuses
