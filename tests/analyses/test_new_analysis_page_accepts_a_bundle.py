"""The new-analysis page takes a collect.sh bundle in place of the separate inputs: the analysis gets the
bundle's evidence and the pod's identity; combining a bundle with pasted evidence is refused."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.test import Client

from meshviz.analyses.models import Analysis
from tests.engine.archives import bundle_members, tar_gz
from tests.kube.fake_apiserver import istio_pod, tproxy_data

pytestmark = pytest.mark.django_db


def _bundle() -> io.BytesIO:
    data = tproxy_data()
    f = io.BytesIO(
        tar_gz(
            bundle_members(
                {
                    "pod.json": json.dumps(istio_pod("hr2-tproxy", tproxy=True)),
                    "iptables-legacy-save.txt": data.iptables_legacy,
                    "ip-rule.txt": data.ip_rule,
                    "ip-route.txt": data.ip_route,
                    "config_dump.json": data.config_dump,
                }
            )
        )
    )
    f.name = "meshviz-hr2-tproxy-geo.tar.gz"
    return f


def test_bundle_creates_the_analysis(client: Client, user: Any, django_capture_on_commit_callbacks: Any) -> None:
    client.force_login(user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/new/", {"bundle": _bundle()})
    assert response.status_code == 302
    a = Analysis.objects.get()
    assert response["Location"] == a.permalink_path
    assert (str(a.pod_ip), a.namespace, a.interception_mode, a.proxy_uid) == (
        "172.16.188.31",
        "hr2-tproxy",
        "TPROXY",
        0,
    )
    assert a.app_ports == [8083] and a.origin == Analysis.Origin.CAPTURED
    a.refresh_from_db()
    assert a.results["stories"][0]["verdict"]["app_peer_ip"] == "10.255.0.1"


def test_bundle_with_pasted_evidence_is_refused(client: Client, user: Any) -> None:
    client.force_login(user)
    response = client.post("/new/", {"bundle": _bundle(), "iptables": "*nat\nCOMMIT\n"})
    assert response.status_code == 400
    assert "a bundle replaces the evidence" in response.content.decode()
    assert Analysis.objects.count() == 0


def test_a_bundle_from_a_failed_submit_is_kept_for_the_next(
    client: Client, user: Any, other_user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client.force_login(user)
    failed = client.post("/new/", {"bundle": _bundle(), "app_ports": "70000"})
    assert failed.status_code == 400
    page = failed.content.decode()
    assert "meshviz-hr2-tproxy-geo.tar.gz</code> is kept" in page
    token = page.split('name="bundle_token" value="')[1].split('"')[0]

    # someone else cannot use the token
    other = Client()
    other.force_login(other_user)
    assert other.post("/new/", {"bundle_token": token, "app_ports": "8083"}).status_code == 400

    with django_capture_on_commit_callbacks(execute=True):
        again = client.post("/new/", {"bundle_token": token, "app_ports": "8083"})
    assert again.status_code == 302
    assert Analysis.objects.get().namespace == "hr2-tproxy"
