"""nftables simulated as the kernel runs it: Istio's nft goldens tell the same story as their iptables twins,
base chains interleave with iptables' tables by priority, NAT chains stop at the first binding, tproxy is not
a verdict, and what is not modelled is a named UNSUPPORTED step."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from meshviz.engine.core.model import Packet
from meshviz.engine.core.trace import Disposition, StepAction, StepKind
from meshviz.engine.pipeline.load import load_snapshot
from meshviz.engine.pipeline.pod import load_pod, run_story, trace
from meshviz.engine.sim.simulate import Sender

FIX = Path(__file__).resolve().parents[1] / "fixtures"
CORPUS = FIX / "corpus"
TWINS = sorted(
    p for p in (FIX / "istio-nftables" / "capture").glob("*.golden") if (CORPUS / "istio-iptables" / p.name).exists()
)
CONNECTIONS = [
    {"direction": "inbound", "client": "10.1.1.1:40000", "port": 8080},
    {"direction": "inbound", "client": "10.1.1.1:40000", "port": 32000},
    {"direction": "outbound", "dst": "10.2.2.2:80", "app_uid": 1000, "app_gid": 1000},
    {"direction": "outbound", "dst": "9.9.1.1:80", "app_uid": 1000, "app_gid": 1000},
]


@pytest.mark.parametrize("golden", TWINS, ids=lambda p: p.stem)
def test_an_istio_nftables_golden_tells_the_story_of_its_iptables_twin(golden: Path) -> None:
    ipt = (CORPUS / "istio-iptables" / golden.name).read_text()
    nft = golden.read_text()
    for conn in CONNECTIONS:
        a = run_story(iptables=ipt, pod_ip="10.0.0.10", **conn)  # type: ignore[arg-type]
        b = run_story(nftables=nft, pod_ip="10.0.0.10", **conn)  # type: ignore[arg-type]
        assert a.story is not None and b.story is not None
        assert b.story.verdict == a.story.verdict, conn


def test_the_profile_is_read_from_istio_nft_tables() -> None:
    pod = load_pod(nftables=(FIX / "istio-nftables" / "capture" / "tproxy.golden").read_text(), pod_ip="10.0.0.10")
    assert pod.profile is not None
    p = pod.profile
    assert (p.mode, p.inbound_port, p.outbound_port, p.tproxy_mark, p.proxy_gid) == ("TPROXY", 15006, 15001, 1337, 1337)
    redirect = load_pod(
        nftables=(FIX / "istio-nftables" / "capture" / "outbound-ports-include.golden").read_text(),
        pod_ip="10.0.0.10",
    ).profile
    assert redirect is not None and (redirect.mode, redirect.proxy_uid, redirect.proxy_gid) == ("REDIRECT", 1337, 1337)


def _steps(ts: list) -> list:  # type: ignore[type-arg]
    return [s for t in ts for s in t.steps()]


def test_nat_chains_run_by_priority_and_stop_at_the_first_binding() -> None:
    ipt = "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -p tcp -d 10.96.0.10 -j DNAT --to-destination 10.1.2.3:8080\nCOMMIT\n"
    early = (
        "table ip early {\n\tchain out {\n\t\ttype nat hook output priority -110; policy accept;\n"
        "\t\ttcp dport 80 redirect to :15001\n\t}\n}\n"
    )
    late = early.replace("-110", "-90")
    pkt = Packet(ipaddress.ip_address("0.0.0.0"), ipaddress.ip_address("10.96.0.10"), sport=40000, dport=80)
    first = load_snapshot(iptables=ipt, nftables=early, pod_ip="10.0.0.10")
    t = trace(first.snapshot, pkt, sender=Sender(uid=1000, gid=1000))[0]
    assert (t.final_packet.dst, t.final_packet.dport) == (ipaddress.ip_address("127.0.0.1"), 15001)
    assert not any(s.table == "nat" and s.hook == "OUTPUT" and s.kind == StepKind.TABLE for s in t.steps()), (
        "iptables' nat table is not consulted after the binding"
    )
    second = load_snapshot(iptables=ipt, nftables=late, pod_ip="10.0.0.10")
    t2 = trace(second.snapshot, pkt, sender=Sender(uid=1000, gid=1000))[0]
    assert (str(t2.final_packet.dst), t2.final_packet.dport) == ("10.1.2.3", 8080)
    assert not any(s.table == "ip early" and s.kind == StepKind.RULE_MATCH for s in t2.steps())


def test_accept_in_one_base_chain_does_not_stop_the_next_but_drop_does() -> None:
    ipt = "*mangle\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp -j MARK --set-mark 0x7\nCOMMIT\n"
    nft = (
        "table inet f {\n\tchain pre {\n\t\ttype filter hook prerouting priority -200; policy accept;\n"
        "\t\ttcp dport 80 accept\n\t\ttcp dport 81 drop\n\t}\n}\n"
    )
    snap = load_snapshot(iptables=ipt, nftables=nft, pod_ip="10.0.0.10").snapshot
    src, dst = ipaddress.ip_address("10.1.1.1"), ipaddress.ip_address("10.0.0.10")
    t80 = trace(snap, Packet(src, dst, sport=1, dport=80), in_iface="eth0")[0]
    assert t80.final_packet.mark == 0x7  # mangle (-150) ran after nft's accept (-200)
    order = [s.table for s in t80.steps() if s.kind == StepKind.TABLE]
    assert order[:2] == ["inet f", "mangle"]
    t81 = trace(snap, Packet(src, dst, sport=1, dport=81), in_iface="eth0")[0]
    assert t81.disposition == Disposition.DROPPED and t81.final_packet.mark == 0


def test_tproxy_without_a_transparent_socket_is_not_a_verdict() -> None:
    from meshviz.engine.core.model import Socket

    nft = (
        "table ip m {\n\tchain pre {\n\t\ttype filter hook prerouting priority mangle; policy accept;\n"
        "\t\ttcp dport 8080 tproxy to :15006 meta mark set 0x539 accept\n\t}\n}\n"
    )
    app = Socket("tcp", 8080, name="app")
    snap = load_snapshot(nftables=nft, pod_ip="10.0.0.10", sockets=(app, Socket("tcp", 15006, name="envoy"))).snapshot
    t = trace(snap, Packet(ipaddress.ip_address("10.1.1.1"), ipaddress.ip_address("10.0.0.10"), sport=1, dport=8080),
              in_iface="eth0")[0]  # fmt: skip
    assert t.disposition == Disposition.ACCEPTED_TO_SOCKET and t.socket is not None and t.socket.startswith("app")
    assert any("tproxy is not a verdict" in s.detail for s in t.steps())
    assert t.final_packet.mark == 0


def test_an_unmodelled_statement_is_a_named_unsupported_step() -> None:
    nft = (
        "table ip f {\n\tchain in {\n\t\ttype filter hook input priority 0; policy accept;\n"
        "\t\ttcp dport 22 limit rate 3/second accept\n\t\ttcp dport 80 limit rate 3/second accept\n\t}\n}\n"
    )
    snap = load_snapshot(nftables=nft, pod_ip="10.0.0.10").snapshot
    t = trace(snap, Packet(ipaddress.ip_address("10.1.1.1"), ipaddress.ip_address("10.0.0.10"), sport=1, dport=80),
              in_iface="eth0")[0]  # fmt: skip
    assert t.disposition == Disposition.UNSUPPORTED
    unsupported = [s for s in t.steps() if s.action == StepAction.UNSUPPORTED]
    assert len(unsupported) == 1  # the port-22 rule's own match fails first: it cannot matter
    s = unsupported[0]
    assert (s.table, s.chain, s.index) == ("ip f", "in", 2)
    assert s.rule == "tcp dport 80 limit rate 3/second accept" and "rate limits" in s.detail


def test_sets_maps_and_verdict_maps_are_looked_up() -> None:
    nft = """table ip k {
	set blocked {
		type ipv4_addr
		flags interval
		elements = { 192.168.0.0/16, 10.9.0.1-10.9.0.9 }
	}
	map svc {
		type ipv4_addr . inet_proto . inet_service : verdict
		elements = { 10.0.0.10 . tcp . 80 : jump to-app }
	}
	chain pre {
		type nat hook prerouting priority dstnat; policy accept;
		ip saddr @blocked drop
		ip daddr . meta l4proto . th dport vmap @svc
	}
	chain to-app {
		meta mark set meta mark | 0x4000
		dnat to 10.0.0.10:8080
	}
}
"""
    snap = load_snapshot(nftables=nft, pod_ip="10.0.0.10").snapshot
    dst = ipaddress.ip_address("10.0.0.10")
    t = trace(snap, Packet(ipaddress.ip_address("10.1.1.1"), dst, sport=1, dport=80), in_iface="eth0")[0]
    assert t.final_packet.dport == 8080 and t.final_packet.mark == 0x4000
    for blocked in ("192.168.3.4", "10.9.0.5"):
        tb = trace(snap, Packet(ipaddress.ip_address(blocked), dst, sport=1, dport=80), in_iface="eth0")[0]
        assert tb.disposition == Disposition.DROPPED
    other = trace(snap, Packet(ipaddress.ip_address("10.1.1.1"), dst, sport=1, dport=81), in_iface="eth0")[0]
    assert other.final_packet.dport == 81


def test_inet_expressions_carry_their_protocol_dependency() -> None:
    """`ip daddr != 127.0.0.1` does not match an IPv6 packet; `meta skuid != 1337` needs a socket."""
    nft = (
        "table inet n {\n\tchain out {\n\t\ttype nat hook output priority -100; policy accept;\n"
        "\t\tip daddr != 127.0.0.1 tcp dport 80 redirect to :15001\n\t\tmeta skuid != 1337 tcp dport 81 redirect to :15001\n\t}\n"
        "\tchain pre {\n\t\ttype nat hook prerouting priority -100; policy accept;\n"
        "\t\tmeta skuid != 1337 tcp dport 81 redirect to :15006\n\t}\n}\n"
    )
    snap = load_snapshot(
        nftables=nft, pod_ip="10.0.0.10", addr="2: eth0    inet6 fd00::10/64 scope global\\       valid_lft forever"
    ).snapshot
    v6 = Packet(ipaddress.ip_address("::"), ipaddress.ip_address("fd00::99"), sport=1, dport=80)
    assert trace(snap, v6, sender=Sender(uid=1000, gid=1000))[0].final_packet.dport == 80
    v4 = Packet(ipaddress.ip_address("0.0.0.0"), ipaddress.ip_address("10.2.2.2"), sport=1, dport=80)
    assert trace(snap, v4, sender=Sender(uid=1000, gid=1000))[0].final_packet.dport == 15001
    inbound = Packet(ipaddress.ip_address("10.1.1.1"), ipaddress.ip_address("10.0.0.10"), sport=1, dport=81)
    assert trace(snap, inbound, in_iface="eth0")[0].final_packet.dport == 81


LISTED = Path(__file__).resolve().parents[1] / "fixtures" / "nftables-listed"


def test_iptables_nft_tables_in_the_nft_listing_are_simulated_once_from_iptables_save() -> None:
    ipt = (LISTED / "iptables-nft-tproxy.restore").read_text()
    nft = (LISTED / "iptables-nft-tproxy.nft-list").read_text()
    conn = {"pod_ip": "10.0.0.10", "client": "10.1.1.1:40000", "port": 8080}
    alone = run_story(iptables=ipt, **conn)  # type: ignore[arg-type]
    both = run_story(iptables=ipt, nftables=nft, **conn)  # type: ignore[arg-type]
    assert alone.story is not None and both.story is not None
    assert both.story.verdict == alone.story.verdict
    assert any("are iptables-nft's" in f.text for f in both.story.findings)
    # Without iptables-save, `xt target TPROXY` (what nft shows of an iptables extension) is a named UNSUPPORTED.
    only = run_story(nftables=nft, **conn)  # type: ignore[arg-type]
    assert only.story is not None and only.story.verdict.failure_code == "UNSUPPORTED"


def test_kube_proxy_nftables_mode_picks_each_endpoint_on_its_own_branch() -> None:
    """kube-proxy's nftables mode: the service verdict map, then `numgen random mod N vmap` explored as branches
    (like iptables' statistic), each ending in its endpoint's DNAT."""
    listing = (LISTED / "kube-proxy-20-services.nft-list").read_text()
    loaded = load_snapshot(nftables=listing, pod_ip="10.0.0.10")
    assert loaded.errors == ()
    svc = loaded.snapshot.nftables.tables[0].chain("service-00000003-ns3/svc3/tcp/http")  # type: ignore[union-attr]
    assert svc is not None
    numgen = svc.rules[-1].text()
    n = int(numgen.split("mod ")[1].split()[0])
    pkt = Packet(ipaddress.ip_address("0.0.0.0"), ipaddress.ip_address("172.16.0.13"), sport=1, dport=80)
    traces = trace(loaded.snapshot, pkt, sender=Sender(uid=1000, gid=1000))
    assert len(traces) == n
    endpoints = {(str(t.final_packet.dst), t.final_packet.dport) for t in traces}
    assert len(endpoints) == n and all(port == 8080 for _, port in endpoints)
    assert not any(t.final_packet.mark & 0x4000 for t in traces)  # the pod (10.0.0.10) is in 10/8: no masquerade mark


def test_the_evidence_scope_reads_istios_nft_tables() -> None:
    """Istio's ambient nft tables are ambient's in-pod redirection; Istio's sidecar nft tables beside iptables
    rules that hold no Istio chain (kube-proxy's) are still a sidecar's evidence."""
    conn = {"pod_ip": "10.0.0.10", "client": "10.1.1.1:40000", "port": 8080}
    ambient = run_story(nftables=(FIX / "istio-nftables" / "cni" / "default.golden").read_text(), **conn)  # type: ignore[arg-type]
    assert ambient.story is not None and ambient.story.facts["scope"] == "ambient-inpod"
    assert "inet istio-ambient-*" in ambient.story.findings[0].text
    kube = (
        "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n-A OUTPUT -j KUBE-SERVICES\n"
        "COMMIT\n"
    )
    mixed = run_story(
        iptables=kube,
        nftables=(FIX / "istio-nftables" / "capture" / "inbound-ports-wildcard.golden").read_text(),
        **conn,  # type: ignore[arg-type]
    )
    assert mixed.story is not None and mixed.story.facts.get("scope", "sidecar") == "sidecar"
    assert mixed.story.verdict.app_peer_ip == "127.0.0.6"


def test_an_escaping_reply_is_explained_with_nfts_own_restore_rule() -> None:
    """An nft TPROXY pod whose policy rule routes the mark but whose replies lose it: the explanation names
    `meta mark set ct mark` (nft's CONNMARK --restore-mark), not an iptables rule."""
    nft = (LISTED / "capture-inbound-ports-wildcard-tproxy.list").read_text()
    nft = nft.replace("meta l4proto tcp ct mark 0x00000539 counter packets 0 bytes 0 meta mark set ct mark\n", "")
    r = run_story(
        nftables=nft,
        ip_rule="0:\tfrom all lookup local\n32765:\tfrom all fwmark 0x539 lookup 133\n32766:\tfrom all lookup main\n"
        "32767:\tfrom all lookup default\n",
        pod_ip="10.0.0.10",
        client="10.1.1.1:40000",
        port=8080,
    )
    assert r.story is not None and str(r.story.verdict.failure_code).startswith("REPLY_ESCAPES")
    assert "no `meta mark set ct mark` rule" in r.story.summary
