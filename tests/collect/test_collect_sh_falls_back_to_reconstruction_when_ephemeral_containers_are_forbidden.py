"""Where the capture container is refused (RBAC, Pod Security), collect.sh says so, records why in the bundle,
and meshviz reconstructs the rules from the pod spec, marked "reconstructed, not captured"."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshviz.engine.evidence.bundle import read_bundle
from tests.kube.fake_apiserver import FakeApiServer
from tests.kube.helpers import POD, REDIRECT_NS, TPROXY_NS

from .collect_sh import kubectl_binary, run_collect_sh


@pytest.mark.parametrize("refusal", ["rbac", "pod-security"])
def test_refused_capture_is_reconstructed(tls_apiserver: FakeApiServer, tmp_path: Path, refusal: str) -> None:
    if refusal == "rbac":
        tls_apiserver.scenario.forbid("patch", "pods", "ephemeralcontainers")
    else:
        tls_apiserver.scenario.enforce_pod_security("baseline")

    run = run_collect_sh(tls_apiserver, tmp_path, TPROXY_NS, POD)

    assert run.returncode == 0, run.stderr
    assert "capture: refused" in run.stdout
    assert "reconstructed, not captured" in run.stderr
    manifest = run.manifest()
    assert manifest["capture"]["status"] == "refused"
    why = next(f["why"] for f in manifest["failed"] if f["what"] == "netfilter")
    assert ("forbidden" in why) if refusal == "rbac" else ('violates PodSecurity "baseline' in why)
    assert not any(n.startswith("iptables") for n in run.names())
    assert "config_dump.json" in run.names()  # exec still worked

    assert run.bundle is not None
    bundle = read_bundle(run.bundle.read_bytes(), source=run.bundle.name)
    assert bundle.reconstructed
    assert bundle.members["iptables"] == ""
    assert "-j TPROXY" in bundle.evidence["iptables"]
    assert "fwmark 1337 lookup 133" in bundle.evidence["ip_rule"]
    assert any(n.startswith("reconstructed, not captured") for n in bundle.notes)


def test_redirect_pod_refused_capture_still_has_its_dump_and_identity(
    tls_apiserver: FakeApiServer, tmp_path: Path
) -> None:
    tls_apiserver.scenario.forbid("patch", "pods", "ephemeralcontainers")
    run = run_collect_sh(tls_apiserver, tmp_path, REDIRECT_NS, POD)
    assert run.bundle is not None
    bundle = read_bundle(run.bundle.read_bytes(), source=run.bundle.name)
    assert bundle.reconstructed and bundle.identity.interception_mode == "REDIRECT"
    assert "-j REDIRECT" in bundle.evidence["iptables"] and "envoy" in bundle.evidence


def test_a_kubectl_without_debug_custom_is_named(tls_apiserver: FakeApiServer, tmp_path: Path) -> None:
    # the real kubectl for everything, except that `debug` answers like kubectl < 1.31 does
    old = tmp_path / "kubectl-1.29"
    old.write_text(
        '#!/bin/sh\nif [ "$1" = debug ]; then echo "error: unknown flag: --custom" >&2; exit 1; fi\n'
        f'exec {kubectl_binary()} "$@"\n'
    )
    old.chmod(0o755)
    run = run_collect_sh(tls_apiserver, tmp_path, REDIRECT_NS, POD, kubectl=str(old))
    manifest = run.manifest()
    assert manifest["capture"]["status"] == "failed"
    why = next(f["why"] for f in manifest["failed"] if f["what"] == "netfilter")
    assert "lacks kubectl debug --custom (1.31+)" in why
    assert run.bundle is not None and read_bundle(run.bundle.read_bytes()).reconstructed
