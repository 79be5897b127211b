"""collect.sh, run with the real kubectl against the fake API server, writes one bundle with everything the
live collector gathers, through exactly one exec and one ephemeral container, and says how in manifest.json."""

from __future__ import annotations

import subprocess
from pathlib import Path

from meshviz.engine.evidence.bundle import read_bundle
from tests.kube.fake_apiserver import POD_IP, PROXY_IMAGE, FakeApiServer
from tests.kube.helpers import POD, REDIRECT_NS

from .collect_sh import kubectl_binary, run_collect_sh


def test_bundle_holds_every_part_and_the_manifest_says_how(tls_apiserver: FakeApiServer, tmp_path: Path) -> None:
    run = run_collect_sh(tls_apiserver, tmp_path, REDIRECT_NS, POD)

    assert run.returncode == 0, run.stderr
    assert run.bundle is not None and run.bundle.name == f"meshviz-{REDIRECT_NS}-{POD}.tar.gz"
    assert f"wrote {run.bundle.name} (capture: captured)" in run.stdout
    for name in (
        "manifest.json",
        "pod.json",
        "config_dump.json",
        "iptables-legacy-save.txt",
        "iptables-nft-save.txt",
        "ip6tables-legacy-save.txt",
        "ip6tables-nft-save.txt",
        "ip-rule.txt",
        "ip6-rule.txt",
        "ip-route.txt",
        "ip6-route.txt",
        "ip-addr.txt",
        "sysctl.txt",
    ):
        assert name in run.names(), name

    manifest = run.manifest()
    assert manifest["format"] == "meshviz-bundle" and manifest["format_version"] == 1
    assert (manifest["namespace"], manifest["pod"]) == (REDIRECT_NS, POD)
    version = subprocess.run([kubectl_binary(), "version", "--client", "-o", "json"], capture_output=True, text=True)
    assert manifest["kubectl"] and manifest["kubectl"] in version.stdout  # the real kubectl ran
    assert manifest["capture"]["status"] == "captured"
    assert manifest["capture"]["image"] == PROXY_IMAGE
    collected = {c["file"]: c["how"] for c in manifest["collected"]}
    assert "pilot-agent request GET config_dump" in collected["config_dump.json"]
    # Istio's proxyv2 has no nft: recorded as failed, with why
    assert [(f["what"], "not in the capture image" in f["why"]) for f in manifest["failed"]] == [
        ("nft-ruleset.txt", True)
    ]
    assert "-A ISTIO_INBOUND" in run.member("iptables-legacy-save.txt")
    assert POD_IP in run.member("ip-addr.txt")

    # one exec into istio-proxy and one ephemeral container, root with NET_ADMIN, targeting istio-proxy
    execs = tls_apiserver.requests_to("GET", r"/exec$")
    assert [r.query["container"] for r in execs] == [["istio-proxy"]]
    assert execs[0].query["command"] == ["pilot-agent", "request", "GET", "config_dump"]
    assert len(tls_apiserver.captures) == 1
    spec = next(iter(tls_apiserver.captures.values())).container
    assert spec["targetContainerName"] == "istio-proxy"
    assert spec["image"] == PROXY_IMAGE
    assert spec["securityContext"]["runAsUser"] == 0
    assert {"NET_ADMIN", "NET_RAW"} <= set(spec["securityContext"]["capabilities"]["add"])
    assert spec["command"][:2] == ["sh", "-c"]

    bundle = read_bundle(run.bundle.read_bytes(), source=run.bundle.name)
    assert not bundle.reconstructed
    assert bundle.identity.pod_ip == POD_IP
    assert bundle.identity.interception_mode == "REDIRECT"
    assert bundle.identity.app_ports == (8083,)
    assert set(bundle.evidence) >= {"iptables", "ip_rule", "ip_route", "ip6_rule", "addr", "sysctl", "envoy"}
