"""`story --udp` against the kernel: Istio's DNS capture goldens loaded into a pod namespace as iptables (legacy and
nft backends) and as native nftables (`nft -f`): dns-uid-gid (the sidecar's uids 3,4 and gids 1,2 exempt,
conntrack zones 1 and 2, the pod's resolv.conf nameserver written in for 127.0.0.53) and istio-cni's
ISTIO_META_DNS_CAPTURE golden (capture-all-dns, uid/gid 1337).

A stand-in DNS proxy (a UDP socket on 127.0.0.1:15053, created by the sidecar's uid/gid as istio-agent's is)
and a stand-in upstream DNS server in the client namespace (10.80.0.1:53 and 10.80.1.1:53) answer every datagram
they receive; a connected UDP socket in the pod (as glibc's resolver uses) sends one datagram as the application
(uid 1000) or as the sidecar (uid 3, gid 1) and waits for the answer.  The engine, fed only what the pod lists
(`iptables-save` or `nft list ruleset`, `ip rule`, `ip route`, `ip addr`, sysctls), must give the kernel's UDP
verdict, every field (story.UDP_VERDICT_FIELDS).

How the kernel's verdict is observed: `received_by` is the stand-in that got the datagram (`dns-proxy` or
`destination`, the upstream server), `receiver_peer_ip` its recvfrom() address, `intercepted` that the DNS proxy
got a datagram sent elsewhere, `reply_received` that the sender's recv() returned an answer, `reply_source` its
recvfrom() address.  `failure` at the resolution the sender sees: ECONNREFUSED is NO_LISTENER; no answer within the
timeout is TIMEOUT (the engine's REPLY_UNMATCHED, REPLY_DROPPED, REPLY_ESCAPES_VIA_* and DROPPED look like that).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from meshviz.engine.core.model import Family
from meshviz.engine.istio.nft_generator import generate_nftables
from meshviz.engine.istio.settings import CaptureSettings
from meshviz.engine.netfilter.parser import parse_iptables
from meshviz.engine.netfilter.render import render_ruleset
from meshviz.engine.pipeline.pod import run_story
from meshviz.engine.story.model import UDP_VERDICT_FIELDS

from . import netns
from .conformance import fixture, to_kernel_text
from .conftest import require_netns
from .netns import CLIENT_IP, CLIENT_IP6, POD_IP, POD_IP6, PodNet

pytestmark = pytest.mark.kernel

NAMESERVER = CLIENT_IP  # the pod's resolv.conf nameserver: the upstream DNS stand-in in the client namespace
NAMESERVER6 = CLIENT_IP6  # and its IPv6 address
OTHER_SERVER = "10.80.1.1"  # the client namespace's second address: a DNS server the rules do not name
PROXY_UID, PROXY_GID = 3, 1  # dns-uid-gid's first exempt uid and gid
APP_UID, APP_GID = 1000, 1000
TIMEOUT = 1.0


def with_nameserver(golden: str) -> str:
    """The golden with the pod's nameservers in place of its 127.0.0.53 and ::127.0.0.53."""
    return re.sub(r"(?<![:\d.])127\.0\.0\.53(?![\d])", NAMESERVER, golden.replace("::127.0.0.53", NAMESERVER6))


def restore_texts(rules: str) -> tuple[str, str | None]:
    """iptables-restore input for IPv4 and (when the rules have any) IPv6."""
    r = parse_iptables(rules, source="golden")
    assert not r.errors, [str(e) for e in r.errors]
    v6 = [render_ruleset(rs) for rs in r.rulesets if rs.family == Family.IPV6]
    return to_kernel_text(rules), (v6[0] if v6 else None)


def capture_all_nftables() -> str:
    """The nftables twin of the CNI plugin's dns.txt golden, as the engine's generator (checked against every
    Istio nftables golden) writes it: Istio ships no nftables golden with capture-all-dns."""
    settings = CaptureSettings.from_values(CaptureSettings(), redirect_dns="true", capture_all_dns="true")
    return generate_nftables(settings, "cni-plugin").script


#: The rules by shape and backend.  uid-gid: Istio's dns-uid-gid golden (the resolv.conf nameserver captured;
#: uids 3,4 and gids 1,2 exempt).  capture-all: istio-cni's plugin golden for ISTIO_META_DNS_CAPTURE=true (every
#: port-53 datagram captured; uid/gid 1337 exempt).
RULES = {
    ("uid-gid", "iptables"): with_nameserver(fixture("corpus/istio-iptables/dns-uid-gid.golden")),
    ("uid-gid", "nftables"): with_nameserver(fixture("istio-nftables/capture/dns-uid-gid.golden")),
    ("capture-all", "iptables"): fixture("corpus/istio-cni/plugin/dns.txt.golden"),
    ("capture-all", "nftables"): capture_all_nftables(),
    # the redirect alone, no conntrack zones: what the zones change
    (
        "no-zones",
        "iptables",
    ): "*nat\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -p udp --dport 53 -j REDIRECT --to-ports 15053\nCOMMIT\n",
    (
        "no-zones",
        "nftables",
    ): "table ip dns {\n\tchain output {\n\t\ttype nat hook output priority -100; policy accept;\n"
    "\t\tudp dport 53 redirect to :15053\n\t}\n}\n",
}
BACKENDS = ("iptables-legacy", "iptables-nft", "nftables")


@dataclass(frozen=True)
class UdpCase:
    name: str
    dst: str  # the server the datagram is sent to (port 53)
    uid: int = APP_UID
    gid: int = APP_GID
    dns_proxy: bool = True
    proxy_uid: int = PROXY_UID  # the uid/gid the DNS proxy runs as
    proxy_gid: int = PROXY_GID
    rules: str = "uid-gid"  # RULES' shape
    ipv6: bool = False  # a dual-stack pod (PodNet ipv6=True): the DNS proxy on ::1 too, the upstream on fd00:80::1
    expect: dict[str, Any] | None = None  # the fields the case was written to show


CASES = [
    UdpCase(
        "the application's query to the nameserver is captured by the DNS proxy; the answer comes from the server",
        NAMESERVER,
        expect={
            "intercepted": True,
            "received_by": "dns-proxy",
            "receiver_peer_ip": POD_IP,
            "reply_source": f"{NAMESERVER}:53",
        },
    ),
    UdpCase(
        "the sidecar's own query (uid 3, gid 1) is exempt and reaches the server",
        NAMESERVER,
        uid=PROXY_UID,
        gid=PROXY_GID,
        expect={"intercepted": False, "received_by": "destination", "reply_source": f"{NAMESERVER}:53"},
    ),
    UdpCase(
        "a server the rules do not name is not captured",
        OTHER_SERVER,
        expect={"intercepted": False, "received_by": "destination", "reply_source": f"{OTHER_SERVER}:53"},
    ),
    UdpCase(
        "a DNS proxy running as a uid/gid the rules do not name answers in zone 0: no un-NAT, no answer",
        NAMESERVER,
        proxy_uid=1500,
        proxy_gid=1500,
        expect={"received_by": "dns-proxy", "reply_received": False, "failure": "TIMEOUT"},
    ),
    UdpCase(
        "no DNS proxy listening: the ICMP error of the captured query (zone 2) is tracked in zone 0, so the "
        "sender is never told",
        NAMESERVER,
        dns_proxy=False,
        expect={"received_by": None, "reply_received": False, "failure": "TIMEOUT"},
    ),
    UdpCase(
        "a query to the pod's own address, not captured, where nothing listens: refused",
        POD_IP,
        expect={"intercepted": False, "received_by": None, "failure": "NO_LISTENER"},
    ),
    UdpCase(
        "capture-all-dns: the application's query to any server reaches the DNS proxy; the answer comes from "
        "the server it asked",
        OTHER_SERVER,
        proxy_uid=1337,
        proxy_gid=1337,
        rules="capture-all",
        expect={"intercepted": True, "received_by": "dns-proxy", "reply_source": f"{OTHER_SERVER}:53"},
    ),
    UdpCase(
        "capture-all-dns: the sidecar's own query (uid 1337) reaches the server and its answer (zone 1) comes back",
        NAMESERVER,
        uid=1337,
        gid=1337,
        proxy_uid=1337,
        proxy_gid=1337,
        rules="capture-all",
        expect={"intercepted": False, "received_by": "destination", "reply_source": f"{NAMESERVER}:53"},
    ),
    UdpCase(
        "capture-all-dns, no DNS proxy listening: the sender is never told",
        NAMESERVER,
        proxy_uid=1337,
        proxy_gid=1337,
        rules="capture-all",
        dns_proxy=False,
        expect={"received_by": None, "failure": "TIMEOUT"},
    ),
    UdpCase(
        "the redirect without conntrack zones, no DNS proxy: the ICMP error is related and refuses the query",
        NAMESERVER,
        rules="no-zones",
        dns_proxy=False,
        expect={"received_by": None, "failure": "NO_LISTENER"},
    ),
    UdpCase(
        "IPv6: the application's query to the IPv6 nameserver reaches the DNS proxy on ::1; the answer comes from "
        "the server",
        NAMESERVER6,
        ipv6=True,
        expect={
            "intercepted": True,
            "received_by": "dns-proxy",
            "receiver_peer_ip": POD_IP6,
            "reply_source": f"[{NAMESERVER6}]:53",
        },
    ),
    UdpCase(
        "IPv6: the sidecar's own query (uid 3) reaches the server",
        NAMESERVER6,
        uid=PROXY_UID,
        gid=PROXY_GID,
        ipv6=True,
        expect={"intercepted": False, "received_by": "destination", "reply_source": f"[{NAMESERVER6}]:53"},
    ),
    UdpCase(
        "IPv6, no DNS proxy listening: the sender is never told",
        NAMESERVER6,
        ipv6=True,
        dns_proxy=False,
        expect={"received_by": None, "failure": "TIMEOUT"},
    ),
]


@pytest.fixture(autouse=True)
def _own_namespace_prefix(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Namespaces of these tests are named mvudp...: they never clash with other runs of the harness."""
    monkeypatch.setattr(netns, "NS_PREFIX", "mvudp")
    yield


def _ip(a: Any) -> str | None:
    return str(a[0]) if a else None


def kernel_verdict(case: UdpCase, sent: Any, proxies: list[Any], upstream: list[Any]) -> dict[str, Any]:
    got_proxy = [r for p in proxies for r in p.accepted(timeout=0.2 / len(proxies))]
    got_upstream = [r for u in upstream for r in u.accepted(timeout=0.0 if got_proxy else 0.2)]
    received_by, peer = None, None
    if got_proxy:
        received_by, peer = "dns-proxy", got_proxy[0].peer
    elif got_upstream:
        received_by, peer = "destination", got_upstream[0].peer
    reply_from = sent.raw.get("reply_from")
    if reply_from and ":" in str(reply_from[0]):
        reply_from = [f"[{reply_from[0]}]", reply_from[1]]
    failure = {"connected": None, "refused": "NO_LISTENER", "timeout": "TIMEOUT"}.get(sent.outcome, sent.outcome)
    return {
        "intercepted": bool(got_proxy) and (case.dst, 53) != ("127.0.0.1", 15053),
        "received_by": received_by,
        "receiver_peer_ip": _ip(peer),
        "reply_received": sent.outcome == "connected",
        "reply_source": f"{reply_from[0]}:{reply_from[1]}" if sent.outcome == "connected" and reply_from else None,
        "failure": failure,
    }


def observable(verdict: dict[str, Any]) -> dict[str, Any]:
    """The engine's verdict at the resolution the sender sees (see the module's docstring)."""
    f = verdict["failure"]
    silent = {"REPLY_UNMATCHED", "REPLY_DROPPED", "DROPPED", "TIMEOUT"}
    if f in silent or (f or "").startswith("REPLY_ESCAPES_VIA_"):
        f = "TIMEOUT"
    return {**verdict, "failure": f}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_story_udp_gives_the_kernels_verdict_for_dns_capture(case: UdpCase, backend: str) -> None:
    ipt_backend = "nft" if backend != "iptables-legacy" else "legacy"
    require_netns(ipt_backend)
    v6_rules: str | None = None
    with PodNet(ipt_backend, ipv6=case.ipv6) as net:
        if backend == "nftables":
            net.run_pod(["nft", "-f", "-"], input=RULES[case.rules, "nftables"])
        else:
            v4_rules, v6_rules = restore_texts(RULES[case.rules, "iptables"])
            net.load_iptables(v4_rules)
            if case.ipv6 and v6_rules is not None:
                net.run_pod([f"ip6tables-{ipt_backend}-restore", "-w", "10"], input=v6_rules)
        servers = (NAMESERVER, OTHER_SERVER, *((NAMESERVER6,) if case.ipv6 else ()))
        upstream = [net.listen(f"upstream {a}", 53, addr=a, side="client", proto="udp") for a in servers]
        # istio-agent binds localhost:15053: 127.0.0.1 and, with IPv6, ::1
        proxy_addrs = ("127.0.0.1", *(("::1",) if case.ipv6 else ())) if case.dns_proxy else ()
        proxies = [
            net.listen(
                f"dns-proxy {a}",
                15053,
                addr=a,
                uid=case.proxy_uid,
                gid=case.proxy_gid,
                proto="udp",
                owner_at_socket=True,
            )
            for a in proxy_addrs
        ]
        sent = net.udp_send("pod", case.dst, 53, uid=case.uid, gid=case.gid, timeout=TIMEOUT)
        kernel = kernel_verdict(case, sent, proxies, upstream)
        evidence = {
            "nftables": net.run_pod(["nft", "list", "ruleset"]).stdout if backend == "nftables" else None,
            "iptables": net.iptables_save() if backend != "nftables" else None,
            "ip6tables": (
                net.run_pod([f"ip6tables-{ipt_backend}-save"]).stdout if backend != "nftables" and case.ipv6 else None
            ),
            "ip6_rule": net.ip6_rule_list() if case.ipv6 else None,
            "ip6_route": net.ip6_route_show_all() if case.ipv6 else None,
            "ip_rule": net.ip_rule_list(),
            "ip_route": net.ip_route_show_all(),
            "addr": net.ip_addr(),
            "sysctl": net.sysctl_snapshot(["net.ipv4.conf.all.rp_filter", "net.ipv4.conf.all.route_localnet"]),
        }
    result = run_story(
        **evidence,
        pod_ip=POD_IP,
        direction="udp",
        dst=f"[{case.dst}]:53" if ":" in case.dst else f"{case.dst}:53",
        app_uid=case.uid,
        app_gid=case.gid,
        proxy_uid=case.proxy_uid,
        proxy_gid=case.proxy_gid,
        dns_proxy=case.dns_proxy,
    )
    assert not result.errors, [str(e) for e in result.errors]
    assert result.story is not None
    engine = observable(result.story.verdict.to_dict())
    ctx = f"\nkernel: {kernel}\nengine: {engine}\n{result.story.summary}\n{json.dumps(sent.raw, default=str)}"
    assert {k: engine[k] for k in UDP_VERDICT_FIELDS} == {k: kernel[k] for k in UDP_VERDICT_FIELDS}, ctx
    expect = case.expect or {}
    assert {k: kernel[k] for k in expect} == expect, "the case no longer shows what it was written for" + ctx
