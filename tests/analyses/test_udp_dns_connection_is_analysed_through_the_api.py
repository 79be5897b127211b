"""A UDP connection through the API: `{"direction": "udp", "dst": ..., "app_uid", "app_gid"}` against Istio's DNS
capture (nft) gives the UDP verdict (the DNS proxy receives the query, the answer comes from the server asked);
`dns_proxy: false` is stored and simulated; a udp connection without dst is a 400."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

GOLDEN = (
    Path(__file__).resolve().parents[1] / "fixtures" / "istio-nftables" / "capture" / "dns-uid-gid.golden"
).read_text()
QUERY = {"direction": "udp", "dst": "127.0.0.53:53", "app_uid": 1000, "app_gid": 1000}


def test_a_udp_query_is_answered_through_the_dns_proxy_and_the_page_shows_it(
    api: APIClient, user: Any, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    payload = {"nftables": GOLDEN, "pod_ip": "10.0.0.10", "connections": [QUERY, {**QUERY, "dns_proxy": False}]}
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post("/api/v1/analyses/", payload, format="json")
    assert created.status_code == 201, created.content
    got = api.get(created.json()["url"]).json()
    assert got["state"] == "done", got
    answered, silent = got["verdicts"]
    assert answered["verdict"] == {
        "intercepted": True,
        "received_by": "dns-proxy",
        "receiver_peer_ip": "127.0.0.1",
        "reply_received": True,
        "reply_source": "127.0.0.53:53",
        "failure": None,
    }
    assert (silent["verdict"]["received_by"], silent["verdict"]["failure"]) == (None, "TIMEOUT")
    client.force_login(user)
    page = client.get(got["permalink"])
    assert page.status_code == 200 and "dns-proxy" in page.content.decode()


def test_a_udp_connection_without_dst_is_400(api: APIClient) -> None:
    r = api.post(
        "/api/v1/analyses/",
        {"nftables": GOLDEN, "pod_ip": "10.0.0.10", "connections": [{"direction": "udp"}]},
        format="json",
    )
    assert r.status_code == 400
    assert any("udp" in e["message"] for e in r.json()["errors"]), r.json()
