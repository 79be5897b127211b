"""TCP handshakes: a SYN, the socket that accepts it, and the SYN-ACK's way back.

This is what an observer of real connections sees (and what tests/kernel
asserts): did `connect()` succeed, which socket accepted, what peer address
does the application see, or did the SYN-ACK never come back.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from typing import Any

from meshviz.engine.core.model import IPAddress, Packet, Socket, SocketRole
from meshviz.engine.core.trace import Disposition, Trace
from meshviz.engine.sim.simulate import Sender, Simulation
from meshviz.engine.sim.sockets import child_of

EPHEMERAL_PORTS = range(32768, 61000)  # net.ipv4.ip_local_port_range default


def ephemeral_port(sim: Simulation, addr: IPAddress | None) -> int:
    """A source port the kernel could pick: not used by any socket on that address (or the wildcard)."""
    used = {
        s.local_port
        for s in sim.sockets.sockets
        if s.local_addr is None or addr is None or s.local_addr == addr or (s.remote_addr == addr)
    } | {s.remote_port for s in sim.sockets.sockets if s.remote_addr == addr and s.remote_port}
    for p in EPHEMERAL_PORTS:
        if p not in used:
            return p
    raise RuntimeError("no free ephemeral port")


@dataclass(frozen=True)
class Endpoint:
    addr: IPAddress
    port: int

    def __str__(self) -> str:
        return f"[{self.addr}]:{self.port}" if self.addr.version == 6 else f"{self.addr}:{self.port}"


@dataclass(frozen=True)
class ConnectionResult:
    """The outcome of one TCP connection attempt.

    outcome: connected | refused | timeout | unreachable | error | left_pod
    (left_pod: the SYN leaves the pod; what answers it is outside the pod's evidence)
    """

    outcome: str
    detail: str
    accepted_by: str | None = None  # name of the listening socket that accepted
    accepted_role: SocketRole | None = None  # whose socket accepted (Envoy's listener, the application's, ...)
    peer_seen: Endpoint | None = None  # getpeername() of the accepted socket
    local_seen: Endpoint | None = None  # getsockname() of the accepted socket
    errno: str | None = None
    syn: Trace | None = None
    synack: Trace | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "detail": self.detail,
            "accepted_by": self.accepted_by,
            "peer_seen": str(self.peer_seen) if self.peer_seen else None,
            "local_seen": str(self.local_seen) if self.local_seen else None,
            "errno": self.errno,
            "traces": [t.to_dict() for t in (self.syn, self.synack) if t is not None],
        }


def _syn_failure(t: Trace) -> ConnectionResult:
    d = t.disposition
    if d == Disposition.NO_SOCKET:
        return ConnectionResult("refused", f"connection refused: {t.detail}", errno="ECONNREFUSED", syn=t)
    if d == Disposition.REJECTED:
        # REJECT's default icmp-port-unreachable and tcp-reset both give ECONNREFUSED to connect().
        refused = any(k in t.detail for k in ("port-unreach", "tcp-reset", "tcp-rst"))
        if refused:
            return ConnectionResult("refused", f"connection refused: {t.detail}", errno="ECONNREFUSED", syn=t)
        return ConnectionResult("unreachable", f"unreachable: {t.detail}", errno="EHOSTUNREACH", syn=t)
    if d == Disposition.NO_ROUTE:
        return ConnectionResult("unreachable", t.detail, errno="EHOSTUNREACH", syn=t)
    if d == Disposition.UNSUPPORTED:
        return ConnectionResult("error", f"cannot be simulated: {t.detail}", syn=t)
    return ConnectionResult("timeout", f"the SYN never gets an answer: {t.detail}", syn=t)


def _accepting_listener(sim: Simulation, t: Trace) -> Socket | None:
    """The listening socket that took the SYN (by its description in the trace)."""
    for s in sim.sockets.sockets:
        if s.listening and t.socket == s.describe():
            return s
    return None


def _accept_and_reply(sim: Simulation, syn: Trace, listener: Socket) -> tuple[Socket, Trace]:
    """The listener accepts: a child socket is created and sends the SYN-ACK.

    The SYN-ACK belongs to the listening socket (its owner is what `-m owner`
    sees) and carries the listener's SO_MARK - or, when the listener has none
    and net.ipv4.tcp_fwmark_accept=1, the SYN's mark, which the accepted socket
    then keeps (inet_request_mark).  A transparent listener may answer from a
    non-local address (no_srccheck).
    """
    p = syn.final_packet
    assert p is not None
    mark = listener.mark
    if not mark and sim.host.snapshot.sysctls.get("net.ipv4.tcp_fwmark_accept"):
        mark = p.mark
    child = replace(child_of(listener, p.dst, p.dport, p.src, p.sport), mark=mark)
    sim.sockets.add(child)
    synack = Packet(
        src=p.dst, dst=p.src, protocol="tcp", sport=p.dport, dport=p.sport, tcp_flags=frozenset({"SYN", "ACK"})
    )
    sender = Sender(uid=listener.uid, gid=listener.gid, mark=mark, transparent=listener.transparent, name=child.name)
    return child, sim.send(synack, sender)


def connect_from_network(sim: Simulation, client: Endpoint, dst: Endpoint, iface: str) -> ConnectionResult:
    """A client outside the pod connects to `dst`; its packets arrive on `iface`."""
    syn = Packet(src=client.addr, dst=dst.addr, protocol="tcp", sport=client.port, dport=dst.port)
    t = sim.receive(syn, iface)
    if t.disposition not in (Disposition.ACCEPTED_TO_SOCKET, Disposition.DELIVERED_LOCAL):
        return _syn_failure(t)
    if t.disposition == Disposition.DELIVERED_LOCAL:
        return ConnectionResult("connected", f"{t.detail} (socket table unknown)", syn=t)
    listener = _accepting_listener(sim, t)
    if listener is None:
        return ConnectionResult("error", f"the SYN reached an established socket: {t.detail}", syn=t)
    child, back = _accept_and_reply(sim, t, listener)
    fp = back.final_packet
    if back.disposition == Disposition.EXITS_INTERFACE and fp is not None and back.interface == iface:
        if (fp.dst, fp.dport, fp.src, fp.sport) == (client.addr, client.port, dst.addr, dst.port):
            return _accepted(
                "connected",
                f"{listener.name or 'listener'} accepted; the SYN-ACK returns to the client on {iface}",
                listener,
                child,
                t,
                back,
            )
        return _accepted(
            "timeout",
            f"the SYN-ACK reaches the client as {fp.describe()}, which does not match the connection it opened "
            f"({client} -> {dst}): the client ignores it",
            listener,
            child,
            t,
            back,
        )
    return _accepted(
        "timeout",
        f"the application accepted, but its SYN-ACK never reaches the client: {back.detail}",
        listener,
        child,
        t,
        back,
    )


def _accepted(
    outcome: str, detail: str, listener: Socket, child: Socket, syn: Trace, synack: Trace
) -> ConnectionResult:
    """A result for a SYN some listener accepted: what the accepted socket sees, and both traces."""
    return ConnectionResult(
        outcome,
        detail,
        accepted_by=listener.name,
        accepted_role=listener.role,
        peer_seen=Endpoint(child.remote_addr, child.remote_port or 0) if child.remote_addr else None,
        local_seen=Endpoint(child.local_addr, child.local_port) if child.local_addr else None,
        syn=syn,
        synack=synack,
    )


def connect_from_pod(
    sim: Simulation,
    dst: Endpoint,
    sender: Sender,
    bind: IPAddress | None = None,
    bind_port: int | None = None,
) -> ConnectionResult:
    """A process inside the pod connects to `dst` (optionally bound, transparent, with SO_MARK)."""
    fam_any = ipaddress.ip_address("0.0.0.0" if dst.addr.version == 4 else "::")
    sport = bind_port or ephemeral_port(sim, bind)
    syn = Packet(src=bind or fam_any, dst=dst.addr, protocol="tcp", sport=sport, dport=dst.port)
    t = sim.send(syn, sender)
    if t.disposition == Disposition.NO_ROUTE and t.hops and len(t.hops) == 1:
        # connect() itself fails: the output route lookup refused.
        errno = "EINVAL" if "EINVAL" in t.detail else "ENETUNREACH"
        return ConnectionResult("error", f"connect() fails: {t.detail}", errno=errno, syn=t)
    src = t.packet.src
    # The connecting socket (SYN_SENT) is what the SYN-ACK must find.
    me = sender.connected_socket("tcp", src, sport, dst.addr, dst.port, sender.name)
    if t.disposition not in (Disposition.ACCEPTED_TO_SOCKET, Disposition.DELIVERED_LOCAL):
        if t.disposition == Disposition.EXITS_INTERFACE:
            return _left_pod(sim, t, me)
        return _syn_failure(t)
    if t.disposition == Disposition.DELIVERED_LOCAL:
        return ConnectionResult("connected", f"{t.detail} (socket table unknown)", syn=t)
    listener = _accepting_listener(sim, t)
    if listener is None:
        return ConnectionResult("error", f"the SYN reached an established socket: {t.detail}", syn=t)
    sim.sockets.add(me)
    child, back = _accept_and_reply(sim, t, listener)
    if back.disposition == Disposition.ACCEPTED_TO_SOCKET and back.socket == me.describe():
        return _accepted(
            "connected",
            f"{listener.name or 'listener'} accepted; the SYN-ACK comes back to the connecting socket",
            listener,
            child,
            t,
            back,
        )
    where = back.detail
    if back.disposition == Disposition.EXITS_INTERFACE:
        where = f"it leaves the pod on {back.interface}"
    return _accepted(
        "timeout", f"the application accepted, but its SYN-ACK never comes back: {where}", listener, child, t, back
    )


def _left_pod(sim: Simulation, t: Trace, me: Socket) -> ConnectionResult:
    """The SYN left the pod.  What answers it is outside the evidence; assuming the destination accepts, its
    SYN-ACK comes back on the interface the SYN left by and must find its way to the connecting socket through
    the pod's rules and routing (conntrack reverses any NAT; reverse-path filtering, marks and TPROXY apply)."""
    fp = t.final_packet
    assert fp is not None
    local = Endpoint(fp.src, fp.sport)
    # The connecting socket as the kernel knows it after the SYN was sent (source chosen, NAT undone on return).
    mine = replace(me, local_addr=t.packet.src if not t.packet.src.is_unspecified else fp.src)
    sim.sockets.add(mine)
    synack = Packet(
        src=fp.dst, dst=fp.src, protocol="tcp", sport=fp.dport, dport=fp.sport, tcp_flags=frozenset({"SYN", "ACK"})
    )
    back = sim.receive(synack, t.interface or "")
    if back.disposition == Disposition.ACCEPTED_TO_SOCKET and back.socket == mine.describe():
        return ConnectionResult(
            "left_pod",
            f"the SYN {t.detail}; the destination's answer (assumed) comes back to the connecting socket",
            local_seen=local,
            syn=t,
            synack=back,
        )
    return ConnectionResult(
        "timeout",
        f"the SYN {t.detail}, but the destination's SYN-ACK never reaches the connecting socket: {back.detail}",
        local_seen=local,
        syn=t,
        synack=back,
    )


def with_port(e: Endpoint, port: int) -> Endpoint:
    return replace(e, port=port)
