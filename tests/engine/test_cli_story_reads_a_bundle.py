"""`python -m meshviz.engine story --bundle F` takes the evidence, pod IP, proxy uid/gid and app ports from a
collect.sh bundle (flags override it); a hostile bundle exits 2 naming the member."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.engine.archives import bundle_members, member, tar_gz
from tests.kube.fake_apiserver import istio_pod, redirect_data

REPO = Path(__file__).resolve().parents[2]


def _story(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meshviz.engine", "story", *args, "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )


def test_bundle_gives_the_verdict(tmp_path: Path) -> None:
    data = redirect_data()
    bundle = tmp_path / "meshviz-hr2-geo.tar.gz"
    bundle.write_bytes(
        tar_gz(
            bundle_members(
                {
                    "pod.json": json.dumps(istio_pod("hr2", tproxy=False)),
                    "iptables-legacy-save.txt": data.iptables_legacy,
                    "iptables-nft-save.txt": data.iptables_nft,
                    "ip-rule.txt": data.ip_rule,
                    "ip-route.txt": data.ip_route,
                    "config_dump.json": data.config_dump,
                }
            )
        )
    )
    out = _story("--bundle", str(bundle), "--client", "10.1.1.1:40000", "--port", "8083")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["verdict"]["app_peer_ip"] == "127.0.0.6"
    assert "bundle: iptables: iptables-legacy-save.txt holds the rules" in out.stderr

    # a flag overrides the bundle: this pod IP has no inbound capture of its own
    other = _story("--bundle", str(bundle), "--pod-ip", "10.9.9.9", "--client", "10.1.1.1:40000", "--port", "8083")
    assert other.returncode == 0 and json.loads(other.stdout)["verdict"] != json.loads(out.stdout)["verdict"]


def test_hostile_bundle_exits_2_naming_the_member(tmp_path: Path) -> None:
    bundle = tmp_path / "evil.tar.gz"
    bundle.write_bytes(tar_gz([*bundle_members({}), member("../../x", b"x")]))
    out = _story("--bundle", str(bundle), "--client", "10.1.1.1:40000", "--port", "8083")
    assert out.returncode == 2
    assert "member '../../x': '..' in the path (path traversal)" in out.stderr


def test_without_bundle_the_rules_are_required() -> None:
    out = _story("--client", "10.1.1.1:40000", "--port", "8083")
    assert out.returncode == 1 and "give --iptables, --ip6tables and/or --nftables" in out.stderr
