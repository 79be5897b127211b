"""`python -m meshviz.engine fix|compare` keep their JSON contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from meshviz.engine.envoy.patch import patch_dump

from .helpers import ENVOY_TPROXY, FIX, IP_ROUTE, IP_RULE_NONE, POD

ROOT = Path(__file__).resolve().parents[3]
TPROXY = FIX / "corpus/istio-cni/plugin/tproxy.txt.golden"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meshviz.engine", *args], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def test_fix_json_has_diagnosis_patches_patched_before_after(tmp_path: Path) -> None:
    (tmp_path / "rule").write_text(IP_RULE_NONE)
    (tmp_path / "route").write_text(IP_ROUTE)
    (tmp_path / "envoy.json").write_text(patch_dump(ENVOY_TPROXY, original_src=(("virtualInbound",), 0)).text)
    p = run(
        "fix",
        "--iptables",
        str(TPROXY),
        "--ip-rule",
        str(tmp_path / "rule"),
        "--ip-route",
        str(tmp_path / "route"),
        "--envoy",
        str(tmp_path / "envoy.json"),
        "--pod-ip",
        POD,
        "--client",
        "10.1.1.1:40000",
        "--port",
        "8083",
        "--goal",
        "preserve-client-ip",
        "--format",
        "json",
    )
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert {"diagnosis", "patches", "patched", "before", "after", "works", "alternatives"} <= set(out)
    assert set(out["patched"]) >= {
        "iptables_save",
        "ip_rule",
        "ip_route",
        "sysctl",
        "envoy_config_dump",
        "proxy_uid",
        "proxy_gid",
    }
    assert out["works"] is True and out["after"]["app_peer_ip"] == "10.1.1.1"
    assert {p["key"] for p in out["patches"]} == {"envoyfilter-original-src", "ip-rule-fwmark"}
    assert out["patched"]["ip_rule"] == ["rule add pref 32765 from all fwmark 0x539 lookup 133"]


def test_compare_json_lists_rows_for_both_modes(tmp_path: Path) -> None:
    (tmp_path / "envoy.json").write_text(ENVOY_TPROXY)
    p = run(
        "compare",
        "--iptables",
        str(TPROXY),
        "--envoy",
        str(tmp_path / "envoy.json"),
        "--pod-ip",
        POD,
        "--client",
        "10.1.1.1:40000",
        "--port",
        "8083",
        "--format",
        "json",
    )
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["modes"] == ["TPROXY", "REDIRECT"]
    aspects = {r["aspect"] for r in out["connections"][0]["rows"]}
    assert {"capture", "downstream_peer", "upstream_bind", "app_peer_ip", "reply_path", "outcome"} <= aspects
    assert set(out["costs"]) == {"TPROXY", "REDIRECT"}


def test_fix_with_bad_rules_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.write_text("*mangle\n-A PREROUTING -m nosuch -j ACCEPT\nCOMMIT\n")
    p = run("fix", "--iptables", str(bad), "--pod-ip", POD, "--client", "10.1.1.1", "--port", "80")
    assert p.returncode == 2
    assert "nosuch" in p.stderr
