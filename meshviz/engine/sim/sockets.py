"""The pod's sockets, and the kernel's socket lookups.

`tcp_v4_rcv` / `__inet_lookup`: an established (or SYN-received) socket
matching the full 4-tuple wins; otherwise a listener on the destination
address and port, a listener bound to that exact address beating a wildcard
one.  `xt_socket` (`-m socket`) does the same lookup but ignores listeners
bound to the wildcard address unless `--nowildcard`, and with
`--transparent` only accepts IP_TRANSPARENT sockets.  TPROXY looks for an
established socket first and then for a listener on `--on-ip:--on-port`; the
socket must be transparent, or the packet is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from meshviz.engine.core.model import Family, IPAddress, Socket


@dataclass
class SocketTable:
    """Mutable during a simulation: accepted and connecting sockets are added."""

    sockets: list[Socket] = field(default_factory=list)
    known: bool = True  # False: the caller gave no socket table; lookups are assumptions

    @staticmethod
    def of(sockets: tuple[Socket, ...] | None) -> SocketTable:
        if sockets is None:
            return SocketTable([], known=False)
        return SocketTable(list(sockets), known=True)

    def copy(self) -> SocketTable:
        return SocketTable(list(self.sockets), self.known)

    def add(self, s: Socket) -> None:
        self.sockets.append(s)

    def remove(self, s: Socket) -> None:
        self.sockets.remove(s)

    def established(self, protocol: str, local: IPAddress, lport: int, remote: IPAddress, rport: int) -> Socket | None:
        for s in self.sockets:
            if (
                not s.listening
                and s.protocol == protocol
                and s.local_port == lport
                and s.local_addr == local
                and s.remote_addr == remote
                and s.remote_port == rport
            ):
                return s
        return None

    def listener(self, protocol: str, addr: IPAddress, port: int) -> Socket | None:
        wildcard: Socket | None = None
        for s in self.sockets:
            if not s.listening or s.protocol != protocol or s.local_port != port:
                continue
            if s.local_addr is None:
                if wildcard is None and _family_ok(s, addr):
                    wildcard = s
            elif s.local_addr == addr:
                return s
        return wildcard

    def lookup(self, protocol: str, src: IPAddress, sport: int, dst: IPAddress, dport: int) -> Socket | None:
        """`__inet_lookup` for a packet src:sport -> dst:dport."""
        return self.established(protocol, dst, dport, src, sport) or self.listener(protocol, dst, dport)


def _family_ok(s: Socket, addr: IPAddress) -> bool:
    # A wildcard IPv4 socket never takes IPv6 packets; IPv6 wildcard sockets
    # are modelled as v6-only (Envoy binds 0.0.0.0 and [::] separately).
    return Family.of(addr) == s.family


def child_of(listener: Socket, local: IPAddress, lport: int, remote: IPAddress, rport: int) -> Socket:
    """The socket `accept()` returns: it inherits IP_TRANSPARENT, mark and owner."""
    return replace(
        listener,
        local_addr=local,
        local_port=lport,
        remote_addr=remote,
        remote_port=rport,
        name=f"{listener.name} (accepted)" if listener.name else "accepted",
    )
