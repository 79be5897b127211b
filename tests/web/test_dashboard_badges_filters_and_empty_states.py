"""The dashboard: verdict badges, pod/namespace/mode/origin, search and filters, examples, clusters and watched
pods with changed verdicts flagged, empty states; visitors see the public examples."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from meshviz.web.dashboard import badge

from .helpers import from_example

pytestmark = pytest.mark.django_db


def test_badges_name_the_outcome() -> None:
    client = "10.255.0.1:40000"
    assert badge("done", {"app_peer_ip": "10.255.0.1"}, client).text == "client IP preserved"
    assert badge("done", {"app_peer_ip": "127.0.0.6"}, client).text == "app sees 127.0.0.6"
    assert badge("done", {"failure": "LOOP", "loop": True}, client).key == "loop"
    assert badge("done", {"failure": "REPLY_ESCAPES_VIA_eth0"}, client).text == "503 UF"
    assert badge("queued", None).key == "pending"
    assert badge("failed", None).key == "error"
    assert badge("done", {"destination_reached": True}).key == "outbound-ok"


def test_empty_dashboard_says_what_to_do_next(client: Client) -> None:
    page = client.get("/").content.decode()

    assert "No analyses yet." in page
    assert "/new/example/redirect-app-sees-127.0.0.6/" in page  # the examples, one click away
    assert "No cluster connected." in page


def test_dashboard_shows_badges_and_filters(client: Client, django_capture_on_commit_callbacks: Any) -> None:
    redirect = from_example(client, django_capture_on_commit_callbacks)
    loop = from_example(client, django_capture_on_commit_callbacks, "tproxy-istio-1.6-loop")

    page = client.get("/").content.decode()
    assert "app sees 127.0.0.6" in page and ">loop<" in page
    assert redirect.pod_name and redirect.pod_name in page
    assert f"namespace {redirect.namespace}" in page
    assert "REDIRECT" in page and "TPROXY" in page
    assert "bundled example" in page  # how it was made

    only_loop = client.get("/", {"verdict": "loop"}).content.decode()
    assert loop.permalink_path in only_loop and redirect.permalink_path not in only_loop
    only_redirect = client.get("/", {"mode": "REDIRECT"}).content.decode()
    assert redirect.permalink_path in only_redirect and loop.permalink_path not in only_redirect
    searched = client.get("/", {"q": "127.0.0.6"}).content.decode()
    assert redirect.permalink_path in searched and loop.permalink_path not in searched
    none = client.get("/", {"q": "no-such-pod"}).content.decode()
    assert "Nothing matches these filters." in none


def test_watched_pod_whose_verdict_changed_is_flagged(client: Client, user: User) -> None:
    from meshviz.clusters.models import Cluster, WatchedPod

    cluster = Cluster.objects.create(owner=user, name="prod", kind=Cluster.Kind.KUBECONFIG)
    WatchedPod.objects.create(owner=user, cluster=cluster, namespace="shop", pod="cart-0", verdict_changed=True)
    WatchedPod.objects.create(owner=user, cluster=cluster, namespace="shop", pod="cart-1")

    page = client.get("/").content.decode()
    assert "1 watched pod changed verdict" in page
    assert page.count("verdict changed</span>") == 1
    assert "shop/cart-0" in page and "shop/cart-1" in page


def test_visitor_sees_public_examples_only(
    client: Client, anon_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    private = from_example(client, django_capture_on_commit_callbacks)
    public = from_example(client, django_capture_on_commit_callbacks, "tproxy-istio-1.6-loop")
    public.public = True
    public.origin = "example"
    public.save()

    page = anon_client.get("/").content.decode()
    assert public.permalink_path in page
    assert private.permalink_path not in page
