"""An IPv6-only pod through the API: ip6tables-save and `ip -6 route` evidence in, a verdict on its own
interface (net1) and its own proxy uid out, with errors in the IPv6 evidence named by their source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "ipv6"
RULES6 = (FIX / "ip6tables-redirect-openshift-uid").read_text()
ROUTES6 = (FIX / "ip6-route-net1").read_text()


def test_ipv6_only_pod_gets_the_verdict_for_its_ipv6_client(
    api: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    payload = {
        "ip6tables": RULES6,
        "ip6_route": ROUTES6,
        "pod_ip": "fd00:80::10",
        "app_ports": [8080],
        "connections": [{"direction": "inbound", "client": "[fd00:80::1]:40000", "port": 8080}],
    }
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post("/api/v1/analyses/", payload, format="json")
    assert created.status_code == 201, created.content
    got = api.get(created.json()["url"]).json()
    assert got["state"] == "done", got
    (v,) = got["verdicts"]
    assert v["verdict"]["app_peer_ip"] == "::6"
    assert v["verdict"]["intercepted"] is True
    profile = got["pod"]["profile"]
    assert profile["pod_iface"] == "net1"
    assert profile["proxy_uid"] == 1000730000


def test_a_bad_ip6tables_line_is_400_naming_ip6tables(api: APIClient) -> None:
    bad = RULES6.replace("COMMIT", "-A PREROUTING -j NOPE\nCOMMIT")
    r = api.post("/api/v1/analyses/", {"ip6tables": bad, "pod_ip": "fd00:80::10"}, format="json")
    assert r.status_code == 400
    errs = r.json()["errors"]
    assert errs and errs[0]["source"] == "ip6tables" and "NOPE" in errs[0]["text"]


def test_neither_iptables_nor_ip6tables_is_400(api: APIClient) -> None:
    r = api.post("/api/v1/analyses/", {"pod_ip": "fd00:80::10"}, format="json")
    assert r.status_code == 400
    assert any(e["source"] == "iptables" for e in r.json()["errors"])
