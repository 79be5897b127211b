"""An istioctl bug-report archive (laid out like Istio's tool writes it, from the corpus dumps): the API lists its
sidecar pods, then creates one analysis per picked pod, marked "reconstructed, not captured"; the page does the
same in two steps; a hostile archive gets a 400 naming the member."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from meshviz.analyses.models import Analysis
from tests.engine.archives import member
from tests.engine.bugreport_archive import GEO, PRODUCTPAGE, bug_report_archive

pytestmark = pytest.mark.django_db


def _upload(data: bytes, name: str = "bug-report.tar.gz") -> io.BytesIO:
    f = io.BytesIO(data)
    f.name = name
    return f


def test_api_lists_then_creates_one_analysis_per_picked_pod(
    api: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    data = bug_report_archive()
    listed = api.post("/api/v1/bug-reports/", {"archive": _upload(data)}, format="multipart")
    assert listed.status_code == 200, listed.content
    assert [(p["namespace"], p["name"], p["mode"], p["version"]) for p in listed.json()["pods"]] == [
        ("default", PRODUCTPAGE, "REDIRECT", "1.4.0"),
        ("hr2", GEO, "REDIRECT", "1.18.2"),
        ("hr2-tproxy", GEO, "TPROXY", "1.18.2"),
    ]
    assert Analysis.objects.count() == 0

    picked = [f"hr2/{GEO}", f"hr2-tproxy/{GEO}"]
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post("/api/v1/bug-reports/", {"archive": _upload(data), "pods": picked}, format="multipart")
    assert created.status_code == 201, created.content
    slugs = [a["slug"] for a in created.json()["analyses"]]
    assert len(slugs) == 2
    peers = []
    for slug in slugs:
        a = Analysis.objects.get(slug=slug)
        assert a.origin == Analysis.Origin.RECONSTRUCTED
        assert any(n.startswith("reconstructed, not captured") for n in a.origin_notes)
        assert a.envoy_config_dump and a.pod_name == GEO and str(a.pod_ip) == "172.16.188.31"
        body = api.get(f"/api/v1/analyses/{slug}/").json()
        assert body["state"] == "done"
        peers.append((a.namespace, a.interception_mode, body["verdicts"][0]["verdict"]["app_peer_ip"]))
    assert sorted(peers) == [("hr2", "REDIRECT", "127.0.0.6"), ("hr2-tproxy", "TPROXY", "10.255.0.1")]


@pytest.mark.parametrize(
    ("extra", "named", "problem"),
    [
        (member("bug-report/../../x", b"x"), "bug-report/../../x", "path traversal"),
        (member("bug-report/proxies/a/b/config_dump", kind=b"2", link="/etc/shadow"), "config_dump", "symbolic link"),
    ],
)
def test_api_hostile_archive_is_a_400_naming_the_member(api: APIClient, extra: Any, named: str, problem: str) -> None:
    response = api.post(
        "/api/v1/bug-reports/", {"archive": _upload(bug_report_archive(extra=[extra]))}, format="multipart"
    )
    assert response.status_code == 400
    (err,) = response.json()["errors"]
    assert named in err["text"] and problem in err["message"]


def test_api_unknown_pod_is_a_400(api: APIClient) -> None:
    response = api.post(
        "/api/v1/bug-reports/", {"archive": _upload(bug_report_archive()), "pods": ["hr2/redis-0"]}, format="multipart"
    )
    assert response.status_code == 400
    assert "no such sidecar pod" in response.json()["errors"][0]["message"]
    assert Analysis.objects.count() == 0


def test_page_upload_pick_and_create(client: Client, user: Any, django_capture_on_commit_callbacks: Any) -> None:
    client.force_login(user)
    listed = client.post("/new/bug-report/", {"archive": _upload(bug_report_archive())})
    assert listed.status_code == 200
    page = listed.content.decode()
    assert PRODUCTPAGE in page and "TPROXY" in page and "1.18.2" in page
    token = re.search(r'name="token" value="([0-9a-f]+)"', page)
    assert token is not None
    with django_capture_on_commit_callbacks(execute=True):
        created = client.post("/new/bug-report/", {"token": token.group(1), "pods": [f"default/{PRODUCTPAGE}"]})
    assert created.status_code == 200, created.content.decode()
    a = Analysis.objects.get()
    assert a.permalink_path in created.content.decode()
    assert (a.namespace, a.pod_name, a.origin) == ("default", PRODUCTPAGE, Analysis.Origin.RECONSTRUCTED)


def test_page_token_is_bound_to_the_user(client: Client, user: Any, other_user: Any) -> None:
    client.force_login(user)
    page = client.post("/new/bug-report/", {"archive": _upload(bug_report_archive())}).content.decode()
    token = re.search(r'name="token" value="([0-9a-f]+)"', page)
    assert token is not None
    client.force_login(other_user)
    response = client.post("/new/bug-report/", {"token": token.group(1), "pods": [f"hr2/{GEO}"]})
    assert response.status_code == 400 and Analysis.objects.count() == 0
