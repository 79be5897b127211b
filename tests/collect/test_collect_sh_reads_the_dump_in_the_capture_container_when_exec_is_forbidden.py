"""collect.sh has the live collector's fallbacks for the config dump: exec, then the capture container (which
shares the pod's network namespace and reaches Envoy's admin port), then the API server's pod proxy."""

from __future__ import annotations

from pathlib import Path

from meshviz.engine.evidence.bundle import read_bundle
from tests.kube.fake_apiserver import FakeApiServer
from tests.kube.helpers import POD, REDIRECT_NS

from .collect_sh import run_collect_sh


def test_dump_from_the_capture_container(tls_apiserver: FakeApiServer, tmp_path: Path) -> None:
    tls_apiserver.scenario.forbid("create", "pods", "exec")
    run = run_collect_sh(tls_apiserver, tmp_path, REDIRECT_NS, POD)
    assert run.returncode == 0, run.stderr
    collected = {c["file"]: c["how"] for c in run.manifest()["collected"]}
    assert collected["config_dump.json"].startswith("the capture container")
    assert "forbidden" in collected["config_dump.json"]  # why exec was not used
    assert '"configs"' in run.member("config_dump.json")
    assert len(tls_apiserver.captures) == 1  # still one ephemeral container
    assert run.bundle is not None
    assert "envoy" in read_bundle(run.bundle.read_bytes()).evidence


def test_dump_through_the_admin_port_proxy_when_the_capture_is_refused_too(
    tls_apiserver: FakeApiServer, tmp_path: Path
) -> None:
    tls_apiserver.scenario.forbid("create", "pods", "exec")
    tls_apiserver.scenario.forbid("patch", "pods", "ephemeralcontainers")
    run = run_collect_sh(tls_apiserver, tmp_path, REDIRECT_NS, POD)
    collected = {c["file"]: c["how"] for c in run.manifest()["collected"]}
    assert "15000/proxy/config_dump" in collected["config_dump.json"]
    assert tls_apiserver.requests_to("GET", r":15000/proxy/config_dump$")


def test_every_fallback_failing_is_recorded_with_each_reason(tls_apiserver: FakeApiServer, tmp_path: Path) -> None:
    tls_apiserver.scenario.forbid("create", "pods", "exec")
    tls_apiserver.scenario.forbid("patch", "pods", "ephemeralcontainers")
    tls_apiserver.scenario.admin_port_status = 503
    run = run_collect_sh(tls_apiserver, tmp_path, REDIRECT_NS, POD)
    failed = {f["what"]: f["why"] for f in run.manifest()["failed"]}
    assert "(1) kubectl exec" in failed["config_dump.json"]
    assert "(3) admin port" in failed["config_dump.json"]
    assert "config_dump.json" not in run.names()
