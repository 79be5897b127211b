"""Spot-checks: an API key's plaintext and a kubeconfig's token appear once (the key on the account page right
after creation) and never again - not in a later response, not in a log line, not in the database."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.test import Client

from meshviz.accounts.models import ApiKey
from meshviz.clusters.models import Cluster
from tests.kube.fake_apiserver import REDIRECT_NS, FakeApiServer

pytestmark = pytest.mark.django_db

KEY_RE = re.compile(r"mvz_[0-9a-f]{8}_[A-Za-z0-9_-]{20,}")


def _logged_in(user: User) -> Client:
    c = Client()
    c.force_login(user)
    return c


def _all_logs(caplog: Any) -> str:
    return "\n".join(r.getMessage() + " " + str(r.args) + " " + (r.exc_text or "") for r in caplog.records)


def _session_texts() -> str:
    return "\n".join(str(s.get_decoded()) for s in Session.objects.all())


def test_api_key_is_shown_once_and_never_logged(user: User, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    c = _logged_in(user)
    created = c.post("/account/keys/", {"name": "chatops"})
    # shown in the creating response only, which no cache may keep
    assert created.status_code == 200 and "no-store" in created["Cache-Control"]
    assert not KEY_RE.search(str(created.items()))
    keys = KEY_RE.findall(created.content.decode())
    assert len(set(keys)) == 1
    plaintext = keys[0]
    assert ApiKey.lookup(plaintext) is not None
    # never again: the account page, the API (as the key itself), the admin-visible fields, the session, the logs
    assert plaintext not in c.get("/account/").content.decode()
    bot = Client(HTTP_AUTHORIZATION=f"Api-Key {plaintext}")
    for path in ("/api/v1/analyses/", "/api/v1/clusters/", "/api/v1/collections/", "/api/v1/watched-pods/"):
        response = bot.get(path)
        assert response.status_code == 200 and plaintext not in response.content.decode()
    wrong = Client(HTTP_AUTHORIZATION=f"Api-Key {plaintext[:-2]}xx")
    assert wrong.get("/api/v1/analyses/").status_code == 401
    row = ApiKey.objects.filter(prefix=plaintext[4:12]).values().get()
    assert plaintext not in str(row) and plaintext[13:] not in str(row)
    assert plaintext not in _session_texts()
    assert plaintext not in _all_logs(caplog) and plaintext[:-2] not in _all_logs(caplog)


def test_the_plaintext_key_is_not_stored_in_the_session_table(user: User) -> None:
    c = _logged_in(user)
    assert c.post("/account/keys/", {"name": "script"}).status_code == 200
    assert not KEY_RE.search(_session_texts())


def test_kubeconfig_token_is_never_shown_or_logged(
    user: User, fake_apiserver: FakeApiServer, caplog: Any, django_capture_on_commit_callbacks: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    token = fake_apiserver.token
    c = _logged_in(user)
    response = c.post("/clusters/", {"name": "kind", "kubeconfig": fake_apiserver.kubeconfig})
    assert response.status_code == 302, response.content.decode()[:2000]
    cluster = Cluster.objects.get(owner=user, name="kind")
    assert token not in cluster.kubeconfig_encrypted and token not in repr(cluster) and token not in str(cluster)
    api = Client(HTTP_AUTHORIZATION=f"Api-Key {ApiKey.issue(user, 'bot')[1]}")
    created = api.post("/api/v1/clusters/", {"name": "kind2", "kubeconfig": fake_apiserver.kubeconfig})
    assert created.status_code == 201
    bodies = [created.content.decode()]
    for path in (
        "/clusters/",
        f"/clusters/{cluster.pk}/",
        f"/clusters/{cluster.pk}/namespaces/{REDIRECT_NS}/",
        "/watched-pods/",
    ):
        bodies.append(c.get(path).content.decode())
    for path in (
        "/api/v1/clusters/",
        f"/api/v1/clusters/{cluster.pk}/",
        f"/api/v1/clusters/{cluster.pk}/namespaces/",
        f"/api/v1/clusters/{cluster.pk}/pods/?namespace={REDIRECT_NS}",
        "/api/schema/",
    ):
        bodies.append(api.get(path).content.decode())
    bodies.append(api.post(f"/api/v1/clusters/{cluster.pk}/check/").content.decode())
    # a real collection (eager Celery) through the page, then its page and API
    pods = api.get(f"/api/v1/clusters/{cluster.pk}/namespaces/{REDIRECT_NS}/pods/").json()["pods"]
    pod = pods[0]["name"]
    with django_capture_on_commit_callbacks(execute=True):
        collected = c.post(f"/clusters/{cluster.pk}/collect/", {"namespace": REDIRECT_NS, "pod": pod})
    assert collected.status_code == 302
    job_page = c.get(collected["Location"])
    assert job_page.status_code == 200
    bodies.append(job_page.content.decode())
    job_id = collected["Location"].strip("/").rsplit("/", 1)[-1]
    job = api.get(f"/api/v1/collections/{job_id}/").json()
    assert job["state"] == "done", job
    bodies.append(str(job))
    bodies.append(api.get(job["analysis"]["url"]).content.decode())
    for body in bodies:
        assert token not in body
    assert token not in _all_logs(caplog)
    assert token not in _session_texts()
