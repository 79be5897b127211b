"""UDP: one datagram a local process sends from a connected socket, and the answer's way back.

What an observer of a real resolver sees (glibc's stub resolver `connect()`s its UDP socket): did a socket
receive the datagram, which one and with what source address (`recvfrom`), and did an answer reach the sending
socket - from which address.  A connected UDP socket only takes datagrams from the address it connected to
(`__udp4_lib_lookup` scores any other source -1); so when conntrack does not undo a NAT on the answer, no socket
takes it.  Nothing to receive it: the kernel answers ICMP port unreachable, and the sending socket's next `recv()`
fails with ECONNREFUSED - when the ICMP's embedded header names it, which after a NAT needs conntrack to relate the
ICMP to the connection, in the same zone.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace

from meshviz.engine.core.model import Packet, Socket, SocketRole
from meshviz.engine.core.trace import Disposition, Trace
from meshviz.engine.netfilter.conntrack import Tuple5
from meshviz.engine.sim.connection import Endpoint, ephemeral_port
from meshviz.engine.sim.simulate import Sender, Simulation


@dataclass(frozen=True)
class DatagramResult:
    """One datagram and its answer.

    outcome: answered | refused | timeout | unreachable | error (what the sender's `recv()` gives).
    """

    outcome: str
    detail: str
    sender_local: Endpoint | None = None  # the sending socket after connect(): its source address and port
    receiver: Socket | None = None  # the pod's socket that received the datagram (None: it left the pod or no one)
    left_pod: bool = False  # the datagram left the pod; what answers it is outside the evidence (assumed to answer)
    interface: str | None = None  # the interface it left by
    peer_seen: Endpoint | None = None  # the source address the receiver sees (recvfrom)
    reply_source: Endpoint | None = None  # where the answer comes from, as the sending socket sees it
    errno: str | None = None
    query: Trace | None = None
    reply: Trace | None = None


def _icmp_error_related(sim: Simulation, t: Trace) -> tuple[bool, str]:
    """Whether the kernel's ICMP port unreachable for the datagram reaches the sending socket, and why.

    `__udp4_lib_err` finds the socket by the ICMP's embedded header, which is the datagram as delivered: when NAT
    changed it, only conntrack can restore it, and only when the ICMP error - sent by the kernel, no socket, through
    raw OUTPUT like any local packet - is looked up in the zone of the datagram's connection (the lookup of a
    related packet uses the zone the packet was given, not the connection's)."""
    start, fp = t.packet, t.final_packet
    assert fp is not None
    if (fp.src, fp.sport, fp.dst, fp.dport) == (start.src, start.sport, start.dst, start.dport):
        return True, "its embedded header is the datagram as sent"
    sent = Tuple5("udp", start.src, start.sport, start.dst, start.dport)
    entry = next((e for e in sim.conntrack.entries if e.original == sent), None)
    if entry is None:
        return False, "no conntrack entry can undo the datagram's NAT in its embedded header"
    probe = sim.copy_state()
    probe.send(Packet(src=fp.dst, dst=fp.src, protocol="icmp"), Sender(uid=None, gid=None, name="kernel ICMP error"))
    zones = [e.zone for e in probe.conntrack.entries if e.original.protocol == "icmp"]
    zone = zones[-1] if zones else 0
    if zone == entry.zone:
        return True, f"conntrack relates it to connection #{entry.ident} (zone {zone}) and undoes the NAT"
    return False, (
        f"it is looked up in conntrack zone {zone}, the datagram's connection #{entry.ident} is in zone "
        f"{entry.zone}: not related, its embedded header keeps {fp.dst}:{fp.dport}, which no socket sent to"
    )


def _query_failure(sim: Simulation, t: Trace, local: Endpoint | None) -> DatagramResult:
    d = t.disposition
    if d == Disposition.NO_SOCKET:
        related, why = _icmp_error_related(sim, t)
        what = f"nothing is bound where the datagram goes ({t.detail}): the kernel answers ICMP port unreachable; {why}"
        if related:
            return DatagramResult(
                "refused",
                f"{what}: the sender's recv() fails with ECONNREFUSED",
                sender_local=local,
                errno="ECONNREFUSED",
                query=t,
            )
        return DatagramResult(
            "timeout", f"{what}: the sender never learns and waits in vain", sender_local=local, query=t
        )
    if d == Disposition.REJECTED:
        refused = "port-unreach" in t.detail
        return DatagramResult(
            "refused" if refused else "unreachable",
            f"rejected: {t.detail}",
            sender_local=local,
            errno="ECONNREFUSED" if refused else "EHOSTUNREACH",
            query=t,
        )
    if d == Disposition.NO_ROUTE:
        return DatagramResult("unreachable", t.detail, sender_local=local, errno="EHOSTUNREACH", query=t)
    if d == Disposition.UNSUPPORTED:
        return DatagramResult("error", f"cannot be simulated: {t.detail}", sender_local=local, query=t)
    return DatagramResult("timeout", f"the datagram is never received: {t.detail}", sender_local=local, query=t)


def _receiver(sim: Simulation, t: Trace) -> Socket | None:
    for s in sim.sockets.sockets:
        if t.socket == s.describe():
            return s
    return None


def send_datagram_from_pod(sim: Simulation, dst: Endpoint, sender: Sender) -> DatagramResult:
    """A process in the pod `connect()`s a UDP socket to `dst`, sends one datagram and waits for the answer.

    A socket in the pod that receives it answers from the address and port it is bound to (or, bound to the
    wildcard, from the address routing picks) to the source it saw; a datagram that leaves the pod is assumed
    answered by its destination, from the address and port it was sent to, arriving on the interface it left by.
    """
    any_addr = ipaddress.ip_address("0.0.0.0" if dst.addr.version == 4 else "::")
    sport = ephemeral_port(sim, None)
    t = sim.send(Packet(src=any_addr, dst=dst.addr, protocol="udp", sport=sport, dport=dst.port), sender)
    if t.disposition == Disposition.NO_ROUTE and len(t.hops) == 1:
        # connect() itself fails: ip4_datagram_connect's route lookup refused.
        return DatagramResult("error", f"connect() fails: {t.detail}", errno="ENETUNREACH", query=t)
    src = t.packet.src
    local = Endpoint(src, sport)
    # The sending socket, connected: bound to the route's source address, it takes answers from dst only.
    name = f"{sender.name} (connected to {dst})"
    me = sender.connected_socket("udp", src, sport, dst.addr, dst.port, name, SocketRole.APPLICATION)
    fp = t.final_packet
    assert fp is not None
    if t.disposition == Disposition.EXITS_INTERFACE:
        sim.sockets.add(me)
        answer = Packet(src=fp.dst, dst=fp.src, protocol="udp", sport=fp.dport, dport=fp.sport)
        back = sim.receive(answer, t.interface or "")
        return _answered(
            back,
            me,
            f"the datagram leaves the pod on {t.interface}; {dst} (outside the evidence) is assumed to answer",
            sender_local=local,
            left_pod=True,
            interface=t.interface,
            peer_seen=Endpoint(fp.src, fp.sport),
            query=t,
        )
    if t.disposition != Disposition.ACCEPTED_TO_SOCKET:
        return _query_failure(sim, t, local)
    receiver = _receiver(sim, t)
    if receiver is None:
        return DatagramResult("error", f"the datagram reached an unknown socket: {t.detail}", query=t)
    sim.sockets.add(me)
    answer = Packet(
        src=receiver.local_addr or any_addr, dst=fp.src, protocol="udp", sport=receiver.local_port, dport=fp.sport
    )
    back = sim.send(
        answer,
        Sender(
            uid=receiver.uid,
            gid=receiver.gid,
            mark=receiver.mark,
            transparent=receiver.transparent,
            name=receiver.name or "receiver",
        ),
    )
    return _answered(
        back,
        me,
        f"{receiver.name or receiver.describe()} receives it from {fp.src}:{fp.sport} and answers",
        sender_local=local,
        receiver=receiver,
        peer_seen=Endpoint(fp.src, fp.sport),
        query=t,
    )


def _answered(
    back: Trace,
    me: Socket,
    what: str,
    *,
    sender_local: Endpoint,
    query: Trace,
    peer_seen: Endpoint,
    receiver: Socket | None = None,
    left_pod: bool = False,
    interface: str | None = None,
) -> DatagramResult:
    """The answer's trace read as the sending socket sees it."""
    base = DatagramResult(
        "timeout",
        what,
        sender_local=sender_local,
        receiver=receiver,
        left_pod=left_pod,
        interface=interface,
        peer_seen=peer_seen,
        query=query,
        reply=back,
    )
    bp = back.final_packet
    if back.disposition == Disposition.ACCEPTED_TO_SOCKET and back.socket == me.describe() and bp is not None:
        return replace(
            base,
            outcome="answered",
            detail=f"{what}; the answer reaches the sending socket from {bp.src}:{bp.sport}",
            reply_source=Endpoint(bp.src, bp.sport),
        )
    if back.disposition == Disposition.UNSUPPORTED:
        return replace(base, outcome="error", detail=f"{what}; the answer cannot be simulated: {back.detail}")
    if back.disposition == Disposition.NO_SOCKET and bp is not None:
        why = (
            f"the answer comes from {bp.src}:{bp.sport}, but the sending socket is connected to "
            f"{me.remote_addr}:{me.remote_port}: no socket takes it"
        )
        return replace(base, detail=f"{what}; {why}")
    where = f"it leaves the pod on {back.interface}" if back.disposition == Disposition.EXITS_INTERFACE else back.detail
    return replace(base, detail=f"{what}; the answer never reaches the sending socket: {where}")
