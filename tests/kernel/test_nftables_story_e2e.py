"""`story --nftables` against the kernel: Istio's nftables goldens loaded with `nft -f` into a pod namespace,
real connections through the stand-in sidecar, and the engine - fed what `nft list ruleset` printed, the
pod's `ip rule`/`ip route`/sysctl output and an Envoy dump describing the stand-in - must give the kernel's
verdict, every field (story.INBOUND_VERDICT_FIELDS / OUTBOUND_VERDICT_FIELDS).

Also a mixed pod: kube-proxy-style NAT rules in iptables-nft beside Istio's nft tables on the same hook; the
engine gets both `iptables-save` and `nft list ruleset` (which shows iptables-nft's tables too, in the order
they were created) and must run the NAT chains in the kernel's order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from meshviz.engine.pipeline.pod import run_story
from meshviz.engine.story.model import INBOUND_VERDICT_FIELDS, OUTBOUND_VERDICT_FIELDS

from . import netns
from .conformance import fixture
from .conftest import require_netns
from .fuzz import (
    CLIENT_SPORT,
    REQUEST_TIMEOUT,
    Scenario,
    _outbound_kernel,
    envoy_dump,
    istio_nft_pod,
    kernel_verdict,
    observable,
    observe,
    sidecar_config,
    sysctl_keys,
)
from .netns import CLIENT_IP, POD_IP, PodNet

pytestmark = pytest.mark.kernel

TPROXY_IP = (["rule", "add", "fwmark", "1337", "lookup", "133"], ["route", "add", "local", "default", "dev", "lo",
                                                                   "table", "133"])  # fmt: skip


def golden(name: str) -> str:
    return fixture(f"istio-nftables/{name}")


@dataclass(frozen=True)
class NftCase:
    name: str
    rules: str  # an nft -f script
    mode: str = "REDIRECT"
    direction: str = "inbound"
    sidecar: bool = True
    bind: str = "passthrough"  # passthrough (127.0.0.6) | original_src | none
    policy: bool = False  # Istio's fwmark 1337 -> table 133 policy route
    app_uid: int = 1000
    port: int = 8080  # the application's port, the one the client connects to
    iptables: str | None = None  # iptables-nft rules (a mixed pod), loaded before the nft script
    iptables_last: bool = False  # ... or after it
    expect: dict[str, Any] | None = None  # the fields the case was written to show


KUBE_DNAT = (
    "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
    ":KUBE-SERVICES - [0:0]\n-A PREROUTING -j KUBE-SERVICES\n"
    "-A KUBE-SERVICES -d 10.80.0.10/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.80.0.10:8080\n"
    "COMMIT\n"
)
BASE = {"client_connected": True, "loop": False, "app_would_see": None}
CASES = [
    NftCase(
        "redirect, every inbound port: Envoy binds 127.0.0.6, the app sees 127.0.0.6",
        golden("capture/inbound-ports-wildcard.golden"),
        expect={"intercepted": True, "app_peer_ip": "127.0.0.6", "failure": None},
    ),
    NftCase(
        "redirect, no sidecar listening: the client is refused",
        golden("capture/inbound-ports-wildcard.golden"),
        sidecar=False,
        expect={"client_connected": False, "intercepted": False},
    ),
    NftCase(
        "redirect, every inbound port but Istio's tunnel port 15008: an app on 15008 sees the client",
        golden("capture/inbound-ports-wildcard.golden"),
        port=15008,
        expect={"intercepted": False, "app_peer_ip": CLIENT_IP},
    ),
    NftCase(
        "redirect, included ports 32000,31000 only: 8080 reaches the app directly",
        golden("capture/inbound-ports-include.golden"),
        expect={"intercepted": False, "app_peer_ip": CLIENT_IP},
    ),
    NftCase(
        "tproxy, original_src with mark 1337 and the policy route: the app sees the client",
        golden("capture/inbound-ports-wildcard-tproxy.golden"),
        mode="TPROXY",
        bind="original_src",
        policy=True,
        expect={"intercepted": True, "app_peer_ip": CLIENT_IP, "failure": None},
    ),
    NftCase(
        "tproxy, original_src without the policy route: Envoy's upstream fails",
        golden("capture/inbound-ports-wildcard-tproxy.golden"),
        mode="TPROXY",
        bind="original_src",
        expect={
            "intercepted": True,
            "app_reached": False,
            "app_would_see": CLIENT_IP,
            "failure": "REPLY_ESCAPES_VIA_eth0",
        },
    ),
    NftCase(
        "tproxy, no transparent socket: nft's tproxy is no verdict, the SYN goes on to the app",
        golden("capture/inbound-ports-wildcard-tproxy.golden"),
        mode="TPROXY",
        sidecar=False,
        policy=True,
        expect={"intercepted": False, "app_peer_ip": CLIENT_IP},
    ),
    NftCase(
        "tproxy with DNS capture, outbound ranges and an excluded interface that is not the pod's",
        golden("capture/tproxy.golden"),
        mode="TPROXY",
        bind="passthrough",
        policy=True,
        expect={"intercepted": True, "app_peer_ip": "127.0.0.6"},
    ),
    NftCase(
        "tproxy with the pod's own interface excluded: nothing is captured",
        golden("capture/tproxy.golden").replace("not-istio-nic", "eth0"),
        mode="TPROXY",
        policy=True,
        expect={"intercepted": False, "app_peer_ip": CLIENT_IP},
    ),
    NftCase(
        "outbound, included range 10.0.0.0/8: the app's connection goes through the sidecar on 15001",
        golden("capture/ipnets.golden"),
        direction="outbound",
        expect={"intercepted": True, "destination_reached": True, "failure": None},
    ),
    NftCase(
        "outbound, no included range: the connection leaves directly",
        golden("capture/empty.golden"),
        direction="outbound",
        expect={"intercepted": False, "destination_reached": True, "destination_peer_ip": POD_IP},
    ),
    NftCase(
        "outbound, owner exemption: the sidecar's uid 1337 is not captured",
        golden("capture/ipnets.golden"),
        direction="outbound",
        app_uid=1337,
        expect={"intercepted": False, "destination_reached": True},
    ),
    NftCase(
        "outbound, excluded range 1.1.0.0/16 and included 9.9.0.0/16: 10.80.0.1 is in neither",
        golden("capture/tproxy.golden"),
        mode="TPROXY",
        direction="outbound",
        policy=True,
        expect={"intercepted": False, "destination_reached": True},
    ),
    NftCase(
        "mixed pod: Istio's NAT chain, created after kube-proxy's iptables-nft nat table at the same priority, "
        "runs first and captures",
        golden("capture/inbound-ports-wildcard.golden"),
        iptables=KUBE_DNAT,
        expect={"intercepted": True, "app_peer_ip": "127.0.0.6"},
    ),
    NftCase(
        "mixed pod: kube-proxy's iptables-nft DNAT, created after Istio's NAT chain, runs first and the "
        "binding it sets up ends the NAT hook: no capture",
        golden("capture/inbound-ports-wildcard.golden"),
        iptables=KUBE_DNAT,
        iptables_last=True,
        expect={"intercepted": False, "app_peer_ip": CLIENT_IP},
    ),
    NftCase(
        "mixed pod: kube-proxy-style filter rules in iptables-nft do not stop Istio's capture",
        golden("capture/inbound-ports-wildcard.golden"),
        iptables=(
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:KUBE-FIREWALL - [0:0]\n"
            "-A INPUT -j KUBE-FIREWALL\n-A KUBE-FIREWALL -p tcp -m tcp --dport 9999 -j DROP\n"
            "-A KUBE-FIREWALL -p tcp -j ACCEPT\nCOMMIT\n"
        ),
        expect={"intercepted": True, "app_peer_ip": "127.0.0.6"},
    ),
]


@pytest.fixture(autouse=True)
def _own_namespace_prefix(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Namespaces of these tests are named mvnft...: they never clash with other runs of the harness."""
    monkeypatch.setattr(netns, "NS_PREFIX", "mvnft")
    yield


def scenario(case: NftCase) -> Scenario:
    return istio_nft_pod(
        case.mode,
        case.policy,
        case.bind,
        sidecar=case.sidecar,
        app_port=case.port,
        app_uid=case.app_uid,
        app_gid=1000 if case.app_uid != 1337 else 1337,
        direction=case.direction,
    )


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_story_with_nftables_gives_the_kernels_verdict(case: NftCase) -> None:
    require_netns("nft")
    s = scenario(case)
    with PodNet("nft") as net:
        if case.policy:
            for cmd in TPROXY_IP:
                net.ip(*cmd)
        if case.iptables is not None and not case.iptables_last:
            net.load_iptables(case.iptables, backend="nft")
        net.run_pod(["nft", "-f", "-"], input=case.rules)
        if case.iptables is not None and case.iptables_last:
            net.load_iptables(case.iptables, backend="nft")
        if case.direction == "outbound":
            kernel, raw = _outbound_kernel(net, s)
        else:
            observe(net, s.app_port, [net.iface])
            app = net.listen("app", s.app_port, uid=s.app_uid, gid=s.app_gid)
            sc = net.sidecar(**sidecar_config(s)) if s.sidecar else None
            got = net.request_from_client(POD_IP, s.app_port, sport=CLIENT_SPORT, timeout=REQUEST_TIMEOUT)
            kernel, raw = kernel_verdict(net, got, app, sc, CLIENT_IP, [net.iface])
        listed = net.run_pod(["nft", "list", "ruleset"]).stdout
        evidence = {
            "nftables": listed,
            "iptables": net.iptables_save(backend="nft") if case.iptables is not None else None,
            "ip_rule": net.ip_rule_list(),
            "ip_route": net.ip_route_show_all(),
            "addr": net.ip_addr(),
            "sysctl": net.sysctl_snapshot(sysctl_keys(s)),
            "envoy": envoy_dump(s),
        }
    conn: dict[str, Any] = (
        {"direction": "outbound", "dst": f"{CLIENT_IP}:{s.app_port}"}
        if case.direction == "outbound"
        else {"client": f"{CLIENT_IP}:{CLIENT_SPORT}", "port": s.app_port}
    )
    result = run_story(
        **conn,
        **evidence,
        pod_ip=POD_IP,
        app_ports=(s.app_port,) if case.direction == "inbound" else (),
        app_uid=s.app_uid,
        app_gid=s.app_gid,
    )
    assert not result.errors, [str(e) for e in result.errors]
    assert result.story is not None
    engine = observable(result.story.verdict.to_dict())
    fields = OUTBOUND_VERDICT_FIELDS if case.direction == "outbound" else INBOUND_VERDICT_FIELDS
    ctx = f"\nkernel: {kernel}\nengine: {engine}\n{result.story.summary}\n{json.dumps(raw, default=str)[:3000]}"
    assert {k: engine[k] for k in fields} == {k: kernel[k] for k in fields}, ctx
    expect = {**(BASE if case.direction == "inbound" else {}), **(case.expect or {})}
    assert {k: kernel[k] for k in expect} == expect, "the case no longer shows what it was written for" + ctx
