"""A bundle collect.sh wrote (real kubectl, fake API server) creates, through the API, an analysis with the same
verdicts as uploading its files separately - as multipart `bundle` and as an `application/gzip` body - with pod
IP, proxy uid/gid, labels and app ports taken from its pod spec."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from meshviz.analyses.models import Analysis
from tests.collect.collect_sh import run_collect_sh
from tests.kube.fake_apiserver import POD_IP, FakeApiServer, Scenario
from tests.kube.helpers import POD, REDIRECT_NS, TPROXY_NS

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    out: dict[str, Path] = {}
    with FakeApiServer(Scenario.istio(), tls=True) as fake:
        for ns in (REDIRECT_NS, TPROXY_NS):
            run = run_collect_sh(fake, tmp_path_factory.mktemp(ns), ns, POD)
            assert run.bundle is not None, run.stderr
            out[ns] = run.bundle
    yield out


def _files(bundle: Path) -> dict[str, str]:
    with tarfile.open(bundle) as tar:
        out = {}
        for m in tar.getmembers():
            f = tar.extractfile(m) if m.isfile() else None
            if f is not None:
                out[m.name.rsplit("/", 1)[-1]] = f.read().decode()
        return out


def _verdicts(api: APIClient, created: Any) -> list[dict[str, Any]]:
    assert created.status_code == 201, created.content
    body = api.get(created.json()["url"]).json()
    assert body["state"] == "done", body
    return [{"connection": v["connection"], "verdict": v["verdict"]} for v in body["verdicts"]]


@pytest.mark.parametrize("ns", [REDIRECT_NS, TPROXY_NS])
def test_bundle_and_separate_files_give_the_same_verdicts(
    api: APIClient, django_capture_on_commit_callbacks: Any, bundles: dict[str, Path], ns: str
) -> None:
    bundle = bundles[ns]
    files = _files(bundle)
    with django_capture_on_commit_callbacks(execute=True):
        as_multipart = api.post("/api/v1/analyses/", {"bundle": bundle.open("rb")}, format="multipart")
    with django_capture_on_commit_callbacks(execute=True):
        as_gzip = api.generic("POST", "/api/v1/analyses/", bundle.read_bytes(), content_type="application/gzip")
    separate_payload = {
        "iptables": files["iptables-legacy-save.txt"],
        "ip_rule": files["ip-rule.txt"],
        "ip_route": files["ip-route.txt"],
        "sysctl": files["sysctl.txt"],
        "envoy_config_dump": files["config_dump.json"],
        "pod_ip": POD_IP,
        "app_ports": [8083],
        "proxy_uid": 0 if ns == TPROXY_NS else 1337,
        "proxy_gid": 1337,
    }
    with django_capture_on_commit_callbacks(execute=True):
        separate = api.post("/api/v1/analyses/", separate_payload, format="json")

    expected = _verdicts(api, separate)
    assert _verdicts(api, as_multipart) == expected
    assert _verdicts(api, as_gzip) == expected
    peer = expected[0]["verdict"]["app_peer_ip"]
    assert peer == ("127.0.0.6" if ns == REDIRECT_NS else "10.255.0.1")

    a = Analysis.objects.get(slug=as_multipart.json()["slug"])
    assert (str(a.pod_ip), a.pod_name, a.namespace) == (POD_IP, POD, ns)
    assert a.app_ports == [8083] and a.labels["pod-template-hash"] == "5c54dcd5bd"
    assert (a.proxy_uid, a.proxy_gid) == ((0, 1337) if ns == TPROXY_NS else (1337, 1337))
    assert a.interception_mode == ("TPROXY" if ns == TPROXY_NS else "REDIRECT")
    assert a.origin == Analysis.Origin.CAPTURED
    assert any(n.startswith("captured by collect.sh") for n in a.origin_notes)


def test_bundle_with_evidence_files_is_refused(api: APIClient, bundles: dict[str, Path]) -> None:
    response = api.post(
        "/api/v1/analyses/",
        {"bundle": bundles[REDIRECT_NS].open("rb"), "iptables": "*nat\nCOMMIT\n"},
        format="multipart",
    )
    assert response.status_code == 400
    (err,) = response.json()["errors"]
    assert err["source"] == "bundle" and "not both" in err["message"]
