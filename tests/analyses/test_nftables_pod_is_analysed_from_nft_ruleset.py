"""A pod whose interception is native nftables, through the API and the new-analysis form: `nft list ruleset`
in the `nftables` field, a verdict out; an error in it is a 400 naming `nftables`, line and column."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from meshviz.analyses.models import Analysis

pytestmark = pytest.mark.django_db

LISTED = Path(__file__).resolve().parents[1] / "fixtures" / "nftables-listed"
REDIRECT = (LISTED / "capture-inbound-ports-wildcard.list").read_text()


def test_nft_ruleset_alone_gets_the_verdict(
    api: APIClient, user: Any, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    payload = {
        "nftables": REDIRECT,
        "pod_ip": "10.0.0.10",
        "app_ports": [8080],
        "connections": [{"direction": "inbound", "client": "10.1.1.1:40000", "port": 8080}],
    }
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post("/api/v1/analyses/", payload, format="json")
    assert created.status_code == 201, created.content
    got = api.get(created.json()["url"]).json()
    assert got["state"] == "done", got
    (v,) = got["verdicts"]
    assert v["verdict"]["intercepted"] is True
    assert v["verdict"]["app_peer_ip"] == "127.0.0.6"
    assert got["pod"]["profile"]["mode"] == "REDIRECT"
    assert Analysis.objects.get().nftables == REDIRECT
    client.force_login(user)
    page = client.get(got["permalink"])
    assert page.status_code == 200 and "127.0.0.6" in page.content.decode()


def test_a_bad_nft_line_is_400_naming_nftables(api: APIClient) -> None:
    bad = REDIRECT.replace("redirect to :15006", "redirect to :15006 frobnicate")
    r = api.post("/api/v1/analyses/", {"nftables": bad, "pod_ip": "10.0.0.10"}, format="json")
    assert r.status_code == 400
    (err,) = r.json()["errors"]
    assert err["source"] == "nftables" and "frobnicate" in err["message"] and err["line"] == 22


def test_the_form_takes_the_nft_ruleset(client: Client, django_user_model: Any) -> None:
    user = django_user_model.objects.create_user("nft", password="pw-nft-123")
    client.force_login(user)
    r = client.post("/new/", {"nftables": REDIRECT, "pod_ip": "10.0.0.10"})
    assert r.status_code == 302, r.content.decode()[:2000]
    assert Analysis.objects.get().nftables == REDIRECT.strip()  # the form trims the pasted text


def test_an_nft_pods_fix_is_nft_commands_in_the_api_the_page_and_the_download(
    api: APIClient, user: Any, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    from .helpers import APP_PORT, evidence_payload

    payload = evidence_payload(
        iptables="",
        nftables=REDIRECT,
        connections=[{"direction": "inbound", "client": "10.1.1.1:40000", "port": APP_PORT}],
    )
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post("/api/v1/analyses/", payload, format="json")
    assert created.status_code == 201, created.content
    got = api.get(created.json()["url"]).json()
    assert got["state"] == "done", got
    fix = got["fix"]
    assert fix["backend"] == "nftables" and fix["works"]
    assert fix["after"]["app_peer_ip"] == "10.1.1.1"
    kinds = [a["kind"] for a in fix["patches"][0]["artifacts"]]
    assert "nft-f" in kinds and "iptables" not in kinds
    assert "tproxy ip to :15006" in fix["nft_fragment"]
    client.force_login(user)
    page = client.get(got["permalink"]).content.decode()
    assert 'id="fix-backend"' in page and "native nftables" in page
    assert 'id="compare-nft"' in page
    n = kinds.index("nft-f") + 1
    download = client.get(f"{got['permalink']}fix/1/{n}.txt")
    assert download.status_code == 200
    assert download["Content-Disposition"].endswith(f'-{n}.nft"')
    assert download.content.decode() == fix["nft_fragment"]
