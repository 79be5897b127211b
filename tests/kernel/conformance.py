"""Shared machinery for the engine-vs-kernel conformance tests.

A `Case` describes a pod: its iptables rules, policy routes, sysctls and the
sockets listening in it, plus one TCP connection (from the client namespace,
or from a process inside the pod).  `run_case` builds that pod for real in
network namespaces, makes the connection, and asks the engine to predict it
from the pod's own `iptables-save`, `ip rule`, `ip route show table all` and
sysctl output.  The two must agree: outcome, which socket accepted, the peer
address the application sees, and the local address it was accepted on.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from meshviz.engine.core.model import Family, Socket
from meshviz.engine.core.trace import render_text
from meshviz.engine.netfilter.parser import parse_iptables
from meshviz.engine.netfilter.render import render_ruleset
from meshviz.engine.pipeline.load import load_snapshot
from meshviz.engine.sim.connection import ConnectionResult, Endpoint, connect_from_network, connect_from_pod
from meshviz.engine.sim.simulate import Host, Sender, Simulation
from meshviz.engine.sim.sockets import SocketTable

from .netns import CLIENT_IP, IFACE, POD_IP, ConnectResult, PodNet

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SYSCTL_KEYS = (
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.route_localnet",
    "net.ipv4.conf.eth0.route_localnet",
    "net.ipv4.conf.lo.route_localnet",
    "net.ipv4.conf.all.rp_filter",
    "net.ipv4.conf.eth0.rp_filter",
    "net.ipv4.conf.lo.rp_filter",
    "net.ipv4.conf.all.src_valid_mark",
    "net.ipv4.tcp_fwmark_accept",
)

# Istio's policy route for TPROXY (tools/istio-iptables: InboundTProxyMark 1337, route table 133).
TPROXY_ROUTES = (
    ("rule", "add", "fwmark", "1337", "lookup", "133"),
    ("route", "add", "local", "default", "dev", "lo", "table", "133"),
)


@dataclass(frozen=True)
class ListenSpec:
    name: str
    port: int
    addr: str = "0.0.0.0"
    transparent: bool = False
    uid: int = 0
    gid: int = 0
    side: str = "pod"

    def socket(self) -> Socket:
        addr = None if self.addr in ("0.0.0.0", "::") else ipaddress.ip_address(self.addr)
        return Socket(
            protocol="tcp",
            local_port=self.port,
            local_addr=addr,
            transparent=self.transparent,
            uid=self.uid,
            gid=self.gid,
            name=self.name,
            family=Family.IPV4,
        )


@dataclass(frozen=True)
class Case:
    name: str
    rules: str  # iptables text in any format the engine parses
    dst: str
    port: int
    origin: str = "client"  # "client" or "pod"
    listeners: tuple[ListenSpec, ...] = ()
    client_listeners: tuple[ListenSpec, ...] = ()
    ip: tuple[tuple[str, ...], ...] = ()  # `ip` commands run in the pod before the connection
    sysctls: tuple[tuple[str, str], ...] = ()
    uid: int = 0
    gid: int = 0
    bind: str | None = None
    mark: int = 0
    transparent: bool = False
    keep_caps: bool = False
    expect: str = ""  # the outcome this scenario exists to show (checked against the kernel too)
    backend: str = "legacy"
    sport: int = 0  # client source port (0: chosen per case)


@dataclass
class Observation:
    outcome: str
    accepted_by: str | None = None
    peer_ip: str | None = None
    peer_port: int | None = None
    local: str | None = None
    errno: str | None = None
    notes: list[str] = field(default_factory=list)


def fixture(rel: str) -> str:
    return (FIXTURES / rel).read_text()


def to_kernel_text(rules: str) -> str:
    """Render any accepted format (Istio dry-run goldens included) as iptables-restore input (IPv4)."""
    r = parse_iptables(rules, source="case")
    assert not r.errors, [str(e) for e in r.errors]
    v4 = [rs for rs in r.rulesets if rs.family == Family.IPV4]
    assert v4, "case has no IPv4 rules"
    return render_ruleset(v4[0])


def observe_kernel(net: PodNet, case: Case, sport: int) -> Observation:
    for cmd in case.ip:
        net.ip(*cmd)
    for key, value in case.sysctls:
        net.sysctl(key, value)
    net.load_iptables(to_kernel_text(case.rules), backend=case.backend)  # type: ignore[arg-type]
    for spec in case.listeners:
        net.listen(spec.name, spec.port, spec.addr, spec.transparent, spec.uid, spec.gid, keep_caps=True)
    for spec in case.client_listeners:
        net.listen(spec.name, spec.port, spec.addr, side="client")
    res: ConnectResult
    if case.origin == "client":
        res = net.connect_from_client(case.dst, case.port, sport=sport, timeout=1.5)
    else:
        res = net.connect_from_pod(
            case.dst,
            case.port,
            uid=case.uid,
            gid=case.gid,
            bind=case.bind,
            transparent=case.transparent,
            mark=case.mark,
            timeout=1.5,
            keep_caps=case.keep_caps,
        )
    obs = Observation(outcome=res.outcome, errno=res.errno)
    if res.connected:
        obs.accepted_by = res.listener
        if res.peer_seen_by_server:
            obs.peer_ip, obs.peer_port = res.peer_seen_by_server
        if res.server_local:
            obs.local = f"{res.server_local[0]}:{res.server_local[1]}"
    return obs


def predict(net: PodNet, case: Case, sport: int) -> tuple[Observation, ConnectionResult]:
    """The engine's prediction from the evidence the pod itself reports."""
    loaded = load_snapshot(
        iptables=net.iptables_save(backend=case.backend),  # type: ignore[arg-type]
        ip_rule=net.ip_rule_list(),
        ip_route=net.ip_route_show_all(),
        sysctl=net.sysctl_snapshot(SYSCTL_KEYS),
        pod_ip=POD_IP,
        sockets=tuple(s.socket() for s in case.listeners),
    )
    assert not loaded.errors, [str(e) for e in loaded.errors]
    sim = Simulation(Host(loaded.snapshot), SocketTable.of(loaded.snapshot.sockets))
    dst = Endpoint(ipaddress.ip_address(case.dst), case.port)
    if case.origin == "client":
        r = connect_from_network(sim, Endpoint(ipaddress.ip_address(CLIENT_IP), sport), dst, IFACE)
    else:
        sender = Sender(uid=case.uid, gid=case.gid, mark=case.mark, transparent=case.transparent, name="connector")
        bind = ipaddress.ip_address(case.bind) if case.bind else None
        r = connect_from_pod(sim, dst, sender, bind=bind)
    obs = Observation(outcome=r.outcome, errno=r.errno, accepted_by=r.accepted_by)
    if r.outcome == "connected" and r.peer_seen:
        obs.peer_ip, obs.peer_port = str(r.peer_seen.addr), r.peer_seen.port
        obs.local = str(r.local_seen) if r.local_seen else None
    if r.outcome == "left_pod":
        # The SYN left the pod: what the client namespace's listener sees is the packet's final source.
        syn = r.syn
        fp = syn.final_packet if syn else None
        match = [s for s in case.client_listeners if fp is not None and s.port == fp.dport]
        if fp is not None and match:
            obs = Observation(outcome="connected", accepted_by=match[0].name, peer_ip=str(fp.src))
    return obs, r


def explain(r: ConnectionResult) -> str:
    parts = [f"engine: {r.outcome}: {r.detail}"]
    for t in (r.syn, r.synack):
        if t is not None:
            parts.append(render_text(t))
    return "\n".join(parts)


def assert_agrees(kernel: Observation, engine: Observation, r: ConnectionResult, case: Case) -> None:
    ctx = f"\nkernel: {kernel}\nengine: {engine}\n{explain(r)}"
    assert engine.outcome == kernel.outcome, "outcome differs" + ctx
    if kernel.outcome == "connected":
        assert engine.accepted_by == kernel.accepted_by, "accepting socket differs" + ctx
        assert engine.peer_ip == kernel.peer_ip, "peer address seen by the application differs" + ctx
        if case.origin == "client":
            assert engine.peer_port == kernel.peer_port, "peer port differs" + ctx
        if kernel.local and engine.local:
            assert engine.local == kernel.local, "local (getsockname) address differs" + ctx
    if kernel.outcome == "error":
        assert engine.errno == kernel.errno, "connect() errno differs" + ctx
    if case.expect:
        assert kernel.outcome == case.expect or kernel.accepted_by == case.expect, (
            f"scenario no longer shows what it was written for (expected {case.expect})" + ctx
        )
