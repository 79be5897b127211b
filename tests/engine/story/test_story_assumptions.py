"""Whatever evidence the user leaves out, the story says what it assumed instead.

Missing `ip rule`, `ip route`, `sysctl`, Envoy config, proxy uid/gid or the application's
listening ports are replaced by Istio's and the kernel's defaults, and each replacement is a
finding of kind "assumption" - never a silent guess.  Given the evidence, the assumption goes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from meshviz.engine.pipeline.pod import run_story

from .scenarios import SCENARIOS, load

BASIC = (SCENARIOS.parent / "corpus" / "istio-cni" / "plugin" / "basic.txt.golden").read_text()
TPROXY = (SCENARIOS.parent / "corpus" / "istio-cni" / "plugin" / "tproxy.txt.golden").read_text()
FULL = load("04-tproxy-original-src-app-sees-client")
ENVOY_118 = (SCENARIOS / "01-redirect-istio-1.18-app-sees-127.0.0.6" / "envoy.json").read_text()
POD = "172.16.188.31"
CLIENT = "10.244.1.7:43210"


def _read(name: str) -> str:
    p = FULL.file(name)
    assert p is not None
    return p.read_text()


def _assumptions(**kw: Any) -> list[str]:
    kw.setdefault("pod_ip", POD)
    if kw.get("direction", "inbound") == "inbound":
        kw.setdefault("client", CLIENT)
        kw.setdefault("port", 8083)
    result = run_story(**kw)
    assert result.errors == (), [str(e) for e in result.errors]
    assert result.story is not None
    return [f.text for f in result.story.findings if f.kind == "assumption"]


def _has(assumptions: list[str], text: str) -> bool:
    return any(text in a for a in assumptions)


def test_nothing_but_iptables_states_every_default() -> None:
    a = _assumptions(iptables=BASIC)
    for expected in (
        "no ip rule output given: assuming kernel defaults (0: lookup local, 32766: lookup main, 32767: lookup default)",
        "no ip route output given: assuming a fresh pod's tables",
        "no sysctl output given: assuming kernel defaults (route_localnet=0",
        "no Envoy config given",
        "assuming the application listens on port 8083 (the evidence names no application port for it)",
    ):
        assert _has(a, expected), (expected, a)


def test_the_sidecar_identity_comes_from_the_rules_owner_exemptions_not_a_default() -> None:
    result = run_story(iptables=BASIC, pod_ip=POD, client=CLIENT, port=8083)
    assert result.story is not None
    a = [f.text for f in result.story.findings if f.kind == "assumption"]
    assert not _has(a, "the sidecar runs as uid"), a
    profile = result.story.facts["profile"]
    assert (profile["proxy_uid"], profile["proxy_gid"]) == (1337, 1337)
    assert any("exempt" in f for f in result.story.facts["profile_facts"])


def test_rules_that_exempt_no_uid_make_the_sidecar_identity_an_assumption() -> None:
    rules = "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp -j REDIRECT --to-ports 15006\nCOMMIT\n"
    a = _assumptions(iptables=rules)
    assert _has(a, "assuming the sidecar runs as uid 1337 (Istio's default; the rules exempt no uid)")
    assert _has(a, "assuming the sidecar runs as gid 1337 (Istio's default)")


def test_no_iptables_at_all_is_an_assumption_too() -> None:
    a = _assumptions(iptables=None)
    assert _has(a, "no iptables rules given: every chain is empty with policy ACCEPT")


def test_the_pod_ip_given_without_routes_is_put_on_eth0() -> None:
    a = _assumptions(iptables=BASIC)
    assert _has(a, f"{POD} on eth0")


def test_tproxy_rules_make_the_assumed_sidecar_uid_0() -> None:
    a = _assumptions(iptables=TPROXY)
    assert _has(a, "assuming the sidecar runs as uid 0 (Istio runs a TPROXY sidecar as root)")


def test_a_tproxy_envoy_config_makes_the_assumed_sidecar_uid_0() -> None:
    envoy = (SCENARIOS.parent / "envoy" / "tproxy-original-src.json").read_text()
    a = _assumptions(iptables=BASIC, envoy=envoy)
    assert _has(a, "assuming the sidecar runs as uid 0 (Istio runs a TPROXY sidecar as root)")


def test_no_envoy_config_assumes_istios_standard_listeners() -> None:
    a = _assumptions(iptables=BASIC)
    assert _has(a, "no Envoy config given: assuming Istio's standard sidecar listeners")
    assert _has(a, "15001 (outbound) and 15006 (inbound)")


def test_ip_rule_commands_are_added_to_the_kernel_defaults() -> None:
    a = _assumptions(iptables=TPROXY, ip_rule="ip rule add fwmark 1337 lookup 133\n")
    assert _has(a, "the ip rule input holds commands, not a listing: adding the kernel's default rules")
    assert not _has(a, "no ip rule output given")


def test_ip_route_without_the_local_table_gets_the_interface_routes() -> None:
    a = _assumptions(iptables=BASIC, ip_route="default via 172.16.188.1 dev eth0\n")
    assert _has(a, "the ip route output has no local table")
    assert not _has(a, "no ip route output given")


def test_routes_that_do_not_show_the_pod_ip_are_an_assumption() -> None:
    a = _assumptions(iptables=BASIC, ip_route=_read("ip-route"), pod_ip="172.16.188.99")
    assert _has(a, "the routes do not show the pod IP 172.16.188.99: assuming it is on eth0")


def test_given_evidence_removes_the_assumptions() -> None:
    envoy = FULL.envoy_path()
    assert envoy is not None
    a = _assumptions(
        iptables=_read("iptables"),
        ip_rule=_read("ip-rule"),
        ip_route=_read("ip-route"),
        sysctl=_read("sysctl"),
        envoy=envoy.read_text(),
        proxy_uid=0,
        proxy_gid=1337,
        app_uid=1000,
        app_gid=1000,
        app_ports=(8083,),
    )
    for gone in ("no ip rule", "no ip route", "no sysctl", "no Envoy config", "the sidecar runs as", "no iptables"):
        assert not _has(a, gone), (gone, a)
    # The application's ports were given: nothing about the pod is assumed any more.
    assert a == []


@pytest.mark.parametrize("ports", [(8083,), (8083, 9090)])
def test_given_application_ports_are_evidence_not_assumptions(ports: tuple[int, ...]) -> None:
    a = _assumptions(iptables=BASIC, envoy=ENVOY_118, app_ports=ports)
    assert not _has(a, "assuming the application listens"), a


def test_a_connection_to_a_port_the_evidence_does_not_name_states_the_assumed_listener() -> None:
    a = _assumptions(iptables=BASIC, port=9999)
    assert _has(a, "assuming the application listens on port 9999"), a


def test_outbound_states_the_same_assumptions() -> None:
    a = _assumptions(iptables=BASIC, direction="outbound", dst="93.184.216.34:443", app_uid=1000, app_gid=1000)
    for expected in (
        "no ip rule output given",
        "no ip route output given",
        "no sysctl output given",
        "no Envoy config",
    ):
        assert _has(a, expected), (expected, a)


def test_assumptions_come_first_and_reach_the_cli_json() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "meshviz.engine",
            "story",
            "--iptables",
            str(SCENARIOS.parent / "corpus" / "istio-cni" / "plugin" / "basic.txt.golden"),
            "--pod-ip",
            POD,
            "--client",
            CLIENT,
            "--port",
            "8083",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        cwd=SCENARIOS.parents[2],
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    findings = json.loads(proc.stdout)["findings"]
    kinds = [f["kind"] for f in findings]
    n = kinds.count("assumption")
    assert n >= 6
    assert kinds[:n] == ["assumption"] * n, kinds
    texts = [f["text"] for f in findings[:n]]
    assert _has(texts, "no ip rule output given")
    assert _has(texts, "no Envoy config given")
