"""`python -m meshviz.engine parse|trace` is a stable contract: flags, JSON shape, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RULES = """*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:ISTIO_INBOUND - [0:0]
-A PREROUTING -p tcp -j ISTIO_INBOUND
-A ISTIO_INBOUND -p tcp --dport 15020 -j RETURN
-A ISTIO_INBOUND -p tcp -j REDIRECT --to-ports 15006
-A OUTPUT -p tcp -m owner ! --uid-owner 1337 -j REDIRECT --to-ports 15001
COMMIT
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meshviz.engine", *args], capture_output=True, text=True, cwd=ROOT, timeout=60
    )


def test_trace_json_reports_redirect_to_15006(tmp_path: Path) -> None:
    f = tmp_path / "rules"
    f.write_text(RULES)
    p = run(
        "trace",
        "--iptables",
        str(f),
        "--src",
        "10.0.0.1:40000",
        "--dst",
        "10.0.0.10:8080",
        "--in-iface",
        "eth0",
        "--format",
        "json",
    )
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    (t,) = out["traces"]
    assert t["final_packet"]["dport"] == 15006
    assert t["disposition"] == "DELIVERED_LOCAL"
    hit = [s for h in t["hops"] for s in h["steps"] if s["kind"] == "RuleMatch"]
    assert [(s["chain"], s["index"], s["line"]) for s in hit] == [("PREROUTING", 1, 5), ("ISTIO_INBOUND", 2, 7)]
    assert any("ip rule" in a for a in t["assumptions"])


def test_trace_local_process_with_proxy_uid_is_not_captured(tmp_path: Path) -> None:
    f = tmp_path / "rules"
    f.write_text(RULES)
    p = run(
        "trace",
        "--iptables",
        str(f),
        "--src",
        "0.0.0.0",
        "--dst",
        "93.184.216.34:443",
        "--pod-ip",
        "10.0.0.10",
        "--local-uid",
        "1337",
        "--local-gid",
        "1337",
        "--format",
        "text",
    )
    assert p.returncode == 0, p.stderr
    assert "EXITS_INTERFACE" in p.stdout


def test_parse_summary_counts_tables_chains_rules(tmp_path: Path) -> None:
    f = tmp_path / "rules"
    f.write_text(RULES)
    p = run("parse", str(f), "--format", "summary")
    assert p.returncode == 0, p.stderr
    assert "rules: 4" in p.stdout


def test_parse_errors_exit_2_with_file_line_and_text(tmp_path: Path) -> None:
    f = tmp_path / "bad.rules"
    f.write_text("*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp -m nosuchmodule --x 1 -j ACCEPT\nCOMMIT\n")
    p = run("parse", str(f), "--format", "json")
    assert p.returncode == 2
    err = json.loads(p.stdout)["errors"][0]
    assert err["line"] == 3 and err["source"].endswith("bad.rules")
    assert "nosuchmodule" in err["text"] and err["column"] > 1


def test_trace_with_bad_rules_exits_2(tmp_path: Path) -> None:
    f = tmp_path / "bad.rules"
    f.write_text("*nat\n-A PREROUTING -j NOSUCHCHAIN\nCOMMIT\n")
    p = run("trace", "--iptables", str(f), "--src", "10.0.0.1", "--dst", "10.0.0.10:80", "--format", "json")
    assert p.returncode == 2
    assert "NOSUCHCHAIN" in p.stderr


def test_story_udp_json_gives_the_udp_verdict_fields_in_order() -> None:
    golden = ROOT / "tests" / "fixtures" / "istio-nftables" / "capture" / "dns-uid-gid.golden"
    args = ["story", "--nftables", str(golden), "--pod-ip", "10.0.0.10", "--udp", "--dst", "127.0.0.53:53"]
    p = run(*args, "--app-uid", "1000", "--app-gid", "1000", "--format", "json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["direction"] == "udp"
    assert list(out["verdict"].items()) == [
        ("intercepted", True),
        ("received_by", "dns-proxy"),
        ("receiver_peer_ip", "127.0.0.1"),
        ("reply_received", True),
        ("reply_source", "127.0.0.53:53"),
        ("failure", None),
    ]
    silent = run(*args, "--app-uid", "1000", "--app-gid", "1000", "--no-dns-proxy", "--format", "json")
    assert json.loads(silent.stdout)["verdict"]["failure"] == "TIMEOUT"


def test_story_udp_without_a_sender_exits_1() -> None:
    p = run("story", "--iptables", "/dev/null", "--pod-ip", "10.0.0.10", "--udp", "--dst", "10.0.0.53:53")
    assert p.returncode == 1 and "udp story needs --dst" in p.stderr
