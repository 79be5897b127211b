"""`python -m meshviz.engine fix|compare --nftables FILE`: for a pod whose Istio capture is native nftables the
output names the backend and shows nft commands, never iptables ones."""

from __future__ import annotations

import json
from pathlib import Path

from meshviz.engine.envoy.patch import to_mode

from .helpers import ENVOY_TPROXY, FIX, IP_ROUTE, IP_RULE, POD
from .test_cli_fix_compare_contract import run

LISTED = FIX / "nftables-listed"


def args(tmp_path: Path, nft: Path, envoy: str, *more: str) -> list[str]:
    (tmp_path / "envoy.json").write_text(envoy)
    return [
        "--nftables", str(nft), "--envoy", str(tmp_path / "envoy.json"), "--pod-ip", POD,
        "--client", "10.1.1.1:40000", "--port", "8083", "--app-port", "8083", *more,
    ]  # fmt: skip


def test_fix_text_for_a_tproxy_nft_pod_missing_ct_mark_restore_prints_the_nft_rule(tmp_path: Path) -> None:
    listed = (LISTED / "capture-inbound-ports-wildcard-tproxy.list").read_text()
    broken = "\n".join(ln for ln in listed.splitlines() if "meta mark set ct mark" not in ln) + "\n"
    (tmp_path / "ruleset.nft").write_text(broken)
    (tmp_path / "rule").write_text(IP_RULE)
    (tmp_path / "route").write_text(IP_ROUTE)
    p = run(
        "fix",
        *args(tmp_path, tmp_path / "ruleset.nft", ENVOY_TPROXY, "--ip-rule", str(tmp_path / "rule")),
        "--ip-route",
        str(tmp_path / "route"),
    )
    assert p.returncode == 0, p.stderr
    assert "goal: preserve-client-ip: reached after the patch" in p.stdout
    assert "backend: nftables" in p.stdout
    assert (
        "nft add rule inet istio-proxy-mangle output meta l4proto tcp ct mark 1337 counter meta mark set ct mark"
        in p.stdout
    )
    assert "iptables -t" not in p.stdout


def test_compare_json_for_a_redirect_nft_pod_gives_the_tproxy_side_as_an_nft_fragment(tmp_path: Path) -> None:
    envoy = to_mode(ENVOY_TPROXY, "REDIRECT").text
    p = run("compare", *args(tmp_path, LISTED / "capture-inbound-ports-wildcard.list", envoy, "--format", "json"))
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["backend"] == "nftables"
    assert out["connections"][0]["differences"]["app_peer_ip"] == {"REDIRECT": "127.0.0.6", "TPROXY": "10.1.1.1"}
    assert "tproxy ip to :15006" in out["derived"]["nft_fragment"]
