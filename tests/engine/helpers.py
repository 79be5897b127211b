"""Small builders for engine unit tests: a pod from rule text, packets, senders."""

from __future__ import annotations

import ipaddress

from meshviz.engine.core.model import Packet, Socket
from meshviz.engine.core.trace import Trace
from meshviz.engine.pipeline.load import load_snapshot
from meshviz.engine.sim.simulate import Host, Sender, Simulation
from meshviz.engine.sim.snapshot import Snapshot
from meshviz.engine.sim.sockets import SocketTable

POD = "10.0.0.10"
CLIENT = "10.0.0.1"

# A pod's routing as `ip route show table all` prints it (eth0 10.0.0.10/24, default via 10.0.0.1).
ROUTES = """default via 10.0.0.1 dev eth0
10.0.0.0/24 dev eth0 proto kernel scope link src 10.0.0.10
local 10.0.0.10 dev eth0 table local proto kernel scope host src 10.0.0.10
broadcast 10.0.0.255 dev eth0 table local proto kernel scope link src 10.0.0.10
local 127.0.0.0/8 dev lo table local proto kernel scope host src 127.0.0.1
local 127.0.0.1 dev lo table local proto kernel scope host src 127.0.0.1
broadcast 127.255.255.255 dev lo table local proto kernel scope link src 127.0.0.1
"""
TPROXY_RULES = "0: from all lookup local\n32765: from all fwmark 0x539 lookup 133\n32766: from all lookup main\n32767: from all lookup default\n"
TPROXY_TABLE = "local default dev lo table 133 scope host\n"


def pod(
    rules: str,
    *,
    routes: str = ROUTES,
    ip_rule: str | None = None,
    sysctl: str | None = None,
    sockets: tuple[Socket, ...] | None = None,
) -> Snapshot:
    r = load_snapshot(iptables=rules, ip_rule=ip_rule, ip_route=routes, sysctl=sysctl, pod_ip=POD, sockets=sockets)
    assert not r.errors, [str(e) for e in r.errors]
    return r.snapshot


def sim(snapshot: Snapshot) -> Simulation:
    return Simulation(Host(snapshot), SocketTable.of(snapshot.sockets))


def tcp(src: str, sport: int, dst: str, dport: int, flags: str = "SYN", mark: int = 0) -> Packet:
    return Packet(
        src=ipaddress.ip_address(src),
        dst=ipaddress.ip_address(dst),
        protocol="tcp",
        sport=sport,
        dport=dport,
        tcp_flags=frozenset(f for f in flags.split(",") if f),
        mark=mark,
    )


def receive(snapshot: Snapshot, packet: Packet, iface: str = "eth0") -> Trace:
    return sim(snapshot).receive(packet, iface)


def send(
    snapshot: Snapshot, packet: Packet, uid: int = 1000, gid: int = 1000, mark: int = 0, transparent: bool = False
) -> Trace:
    return sim(snapshot).send(packet, Sender(uid=uid, gid=gid, mark=mark, transparent=transparent))


def listener(
    port: int,
    *,
    transparent: bool = False,
    name: str | None = None,
    addr: str | None = None,
    uid: int = 0,
    gid: int = 0,
    mark: int = 0,
) -> Socket:
    return Socket(
        protocol="tcp",
        local_port=port,
        local_addr=ipaddress.ip_address(addr) if addr else None,
        transparent=transparent,
        uid=uid,
        gid=gid,
        mark=mark,
        name=name or f"listener:{port}",
    )


def rule_hits(trace: Trace) -> list[tuple[str, str, int]]:
    return [(s.table or "", s.chain or "", s.index or 0) for s in trace.rules_hit()]
