"""A fix generated for a native nftables pod, applied to that pod's kernel, gives the verdict meshviz promised.

Each case builds a pod whose Istio capture is Istio's nftables golden (loaded with `nft -f`), broken in one way,
with a stand-in sidecar; a real client request shows the breakage.  The engine gets what a user would collect
(`nft list ruleset`, `ip rule`, `ip route`, `ip addr`, sysctls, the sidecar's Envoy dump) and `fix(...,
goal="preserve-client-ip")` answers with nft commands.  Then, in the same pod, exactly what the fix says is
applied: its `nft -f` fragment with `nft -f`, its `ip` commands, the sidecar restarted as the patched Envoy dump
describes it.  A second request must give the fix's promised verdict (`after`), every field
(story.INBOUND_VERDICT_FIELDS), and reach the application with the client's address.  A fresh pod built from the
fix's `patched` evidence alone (its nft ruleset loaded with `nft -f`, its rules and routes) gives it too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from meshviz.engine.fix.plans import fix
from meshviz.engine.pipeline.evidence import Evidence
from meshviz.engine.story.model import INBOUND_VERDICT_FIELDS

from . import netns
from .conformance import fixture
from .conftest import require_netns
from .fuzz import (
    CLIENT_SPORT,
    REQUEST_TIMEOUT,
    UPSTREAM_TIMEOUT,
    envoy_dump,
    istio_nft_pod,
    kernel_verdict,
    observable,
    observe,
    sidecar_config,
    sysctl_keys,
)
from .netns import CLIENT_IP, POD_IP, PodNet
from .test_fix_applied import sidecar_from_envoy

pytestmark = pytest.mark.kernel

TPROXY_IP = (("rule", "add", "fwmark", "1337", "lookup", "133"),
             ("route", "add", "local", "default", "dev", "lo", "table", "133"))  # fmt: skip
REDIRECT = fixture("istio-nftables/capture/inbound-ports-wildcard.golden")
TPROXY = fixture("istio-nftables/capture/inbound-ports-wildcard-tproxy.golden")
KUBE_FILTER = (
    "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:KUBE-FIREWALL - [0:0]\n"
    "-A INPUT -j KUBE-FIREWALL\n-A KUBE-FIREWALL -p tcp -m tcp --dport 9999 -j DROP\n"
    "-A KUBE-FIREWALL -p tcp -j ACCEPT\nCOMMIT\n"
)


def without(script: str, fragment: str) -> str:
    kept = [line for line in script.splitlines() if fragment not in line]
    assert len(kept) == len(script.splitlines()) - 1, f"{fragment!r} is not on exactly one line"
    return "\n".join(kept) + "\n"


@dataclass(frozen=True)
class Case:
    name: str
    rules: str  # the pod's Istio nft script
    mode: str  # the sidecar's, as broken
    bind: str  # passthrough | original_src
    policy: bool  # Istio's fwmark 1337 -> table 133 route
    repairs: tuple[str, ...]  # the repairs the fix must choose
    iptables: str | None = None  # iptables-nft rules beside Istio's nft tables (a mixed pod)


CASES = [
    Case(
        "REDIRECT nft pod (app sees 127.0.0.6): Istio's TPROXY nft tables replace its own",
        REDIRECT,
        "REDIRECT",
        "passthrough",
        False,
        ("switch-to-tproxy",),
    ),
    Case(
        "TPROXY nft pod without its policy route: ip rule fwmark 1337 lookup 133 and the local default route",
        TPROXY,
        "TPROXY",
        "original_src",
        False,
        ("ip-rule-fwmark", "ip-route-local-default"),
    ),
    Case(
        "TPROXY nft pod without `ct mark set mark`: nft add rule in istio-proxy-mangle prerouting",
        without(TPROXY, "ct mark set mark"),
        "TPROXY",
        "original_src",
        True,
        ("connmark-save",),
    ),
    Case(
        "TPROXY nft pod without `meta mark set ct mark`: nft add rule in istio-proxy-mangle output",
        without(TPROXY, "meta mark set ct mark"),
        "TPROXY",
        "original_src",
        True,
        ("connmark-restore",),
    ),
    Case(
        "mixed pod (kube-proxy filter rules in iptables-nft, REDIRECT in nft): the switch leaves the iptables rules",
        REDIRECT,
        "REDIRECT",
        "passthrough",
        False,
        ("switch-to-tproxy",),
        iptables=KUBE_FILTER,
    ),
]


@pytest.fixture(autouse=True)
def _own_namespace_prefix(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Namespaces of these tests are named mvnftfix...: they never clash with other runs of the harness."""
    monkeypatch.setattr(netns, "NS_PREFIX", "mvnftfix")
    yield


def scenario(case: Case) -> Any:
    return istio_nft_pod(case.mode, case.policy, case.bind)


def rules_of(save: str) -> list[str]:
    """An iptables-save without its comment lines (they carry the time) and chain counters."""
    return [re.sub(r"\[\d+:\d+\]", "[0:0]", line) for line in save.splitlines() if not line.startswith("#")]


def ip_commands(result: dict[str, Any]) -> list[list[str]]:
    """Every `ip ...` line of the fix's `ip` artifacts, as the arguments of `ip`."""
    return [
        line.split()[1:]
        for p in result["patches"]
        for a in p["artifacts"]
        if a["kind"] == "ip"
        for line in a["content"].splitlines()
        if line.startswith("ip ")
    ]


def request(net: PodNet, s: Any, sidecar_cfg: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A fresh observer, application and sidecar; one client request; the kernel's verdict."""
    net.run_pod(["nft", "add", "table", "inet", "meshviz_observe"])
    net.run_pod(["nft", "delete", "table", "inet", "meshviz_observe"])
    observe(net, s.app_port, [net.iface])
    app = net.listen("app", s.app_port, uid=s.app_uid, gid=s.app_gid)
    sc = net.sidecar(**sidecar_cfg)
    try:
        got = net.request_from_client(POD_IP, s.app_port, sport=CLIENT_SPORT, timeout=REQUEST_TIMEOUT)
        return kernel_verdict(net, got, app, sc, CLIENT_IP, [net.iface])
    finally:
        sc.close()
        app.close()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_applied_nft_fix_gives_the_promised_verdict_in_the_kernel(case: Case) -> None:
    require_netns("nft")
    s = scenario(case)
    with PodNet("nft") as net:
        # 1. The broken pod and its evidence, as a user would collect it.
        if case.policy:
            for cmd in TPROXY_IP:
                net.ip(*cmd)
        if case.iptables is not None:
            net.load_iptables(case.iptables, backend="nft")
        net.run_pod(["nft", "-f", "-"], input=case.rules)
        broken, _ = request(net, s, sidecar_config(s))
        assert broken["app_peer_ip"] != CLIENT_IP, f"the pod was not broken: {broken}"
        iptables_before = net.iptables_save(backend="nft") if case.iptables is not None else ""
        ev = Evidence(
            iptables=iptables_before,
            nftables=net.run_pod(["nft", "list", "ruleset"]).stdout,
            pod_ip=POD_IP,
            ip_rule=net.ip_rule_list(),
            ip_route=net.ip_route_show_all(),
            addr=net.ip_addr(),
            sysctl=net.sysctl_snapshot(sysctl_keys(s)),
            envoy=envoy_dump(s),
            app_ports=(s.app_port,),
        )
        result = fix(ev, client=f"{CLIENT_IP}:{CLIENT_SPORT}", port=s.app_port)
        out = result.to_dict()
        assert result.works and result.after is not None, json.dumps(out, indent=1)[:4000]
        assert out["backend"] == "nftables"
        assert tuple(r.key for r in result.repairs) == case.repairs
        assert not {a["kind"] for p in out["patches"] for a in p["artifacts"]} & {"iptables", "iptables-restore"}

        # 2. What the fix says, applied to this pod: nft -f, ip, the sidecar as the patched dump describes it.
        if out["nft_fragment"] is not None:
            net.run_pod(["nft", "-f", "-"], input=out["nft_fragment"])
        for cmd in ip_commands(out):
            net.ip(*cmd)
        net.run_in("pod", ["conntrack", "-F"], check=False)
        patched = out["patched"]
        tproxy = "tproxy ip to" in net.run_pod(["nft", "list", "ruleset"]).stdout
        fixed_sidecar = {
            **sidecar_from_envoy(patched["envoy_config_dump"], port=s.app_port),
            # the identity the fix gives the sidecar, else the one it runs with
            "uid": patched["proxy_uid"] if patched["proxy_uid"] is not None else sidecar_config(s)["uid"],
            "gid": patched["proxy_gid"] if patched["proxy_gid"] is not None else sidecar_config(s)["gid"],
            "orig_dst": "getsockname" if tproxy else "so_original_dst",
            "upstream_timeout": UPSTREAM_TIMEOUT,
        }
        kernel, raw = request(net, s, fixed_sidecar)
        if case.iptables is not None:
            assert rules_of(net.iptables_save(backend="nft")) == rules_of(iptables_before), "iptables rules changed"
    promised = observable(result.after)
    ctx = f"\nkernel: {kernel}\npromised: {promised}\n{result.after_summary}\n{json.dumps(raw, default=str)[:3000]}"
    assert {k: kernel[k] for k in INBOUND_VERDICT_FIELDS} == {k: promised[k] for k in INBOUND_VERDICT_FIELDS}, ctx
    assert kernel["app_reached"] and kernel["app_peer_ip"] == CLIENT_IP, ctx
    if case.iptables is not None:
        return  # iptables-nft's tables are in the listing too: a fresh pod is rebuilt from nft-only evidence
    # 3. A fresh pod built from `patched` alone: its nft ruleset (the listing and the fragment) with nft -f, its
    #    rules and routes, the sidecar as the patched dump says.
    with PodNet("nft") as fresh:
        fresh.run_pod(["nft", "-f", "-"], input=patched["nftables"])
        for cmd in patched["ip_rule"] + patched["ip_route"]:
            fresh.ip(*cmd.split())
        rebuilt, raw = request(fresh, s, fixed_sidecar)
    ctx = f"\nrebuilt: {rebuilt}\npromised: {promised}\n{json.dumps(raw, default=str)[:3000]}"
    assert {k: rebuilt[k] for k in INBOUND_VERDICT_FIELDS} == {k: promised[k] for k in INBOUND_VERDICT_FIELDS}, ctx
