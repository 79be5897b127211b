"""A model of the connection tracking table.

Follows nf_conntrack: an entry has an original and a reply tuple; NAT
rewrites the reply tuple when a binding is set up (only on a connection's
first packet, per manip type); packets are classified ORIGINAL or REPLY by
which tuple they match; a reply marks the entry SEEN_REPLY, after which
both directions are ESTABLISHED.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from meshviz.engine.core.model import CtDirection, CtState, IPAddress, Packet


@dataclass(frozen=True)
class Tuple5:
    protocol: str
    src: IPAddress
    sport: int
    dst: IPAddress
    dport: int

    def inverse(self) -> Tuple5:
        return Tuple5(self.protocol, self.dst, self.dport, self.src, self.sport)

    def describe(self) -> str:
        return f"{self.protocol} {self.src}:{self.sport} -> {self.dst}:{self.dport}"


def tuple_of(p: Packet) -> Tuple5:
    return Tuple5(p.protocol, p.src, p.sport, p.dst, p.dport)


@dataclass
class CtEntry:
    original: Tuple5
    reply: Tuple5
    zone: int = 0
    mark: int = 0
    seen_reply: bool = False
    src_nat: bool = False
    dst_nat: bool = False
    nat_src_done: bool = False  # SRC manip initialised (POSTROUTING / INPUT)
    nat_dst_done: bool = False  # DST manip initialised (PREROUTING / OUTPUT)
    confirmed: bool = False
    ident: int = 0

    def describe(self) -> str:
        s = f"#{self.ident} orig {self.original.describe()} / reply {self.reply.describe()}"
        if self.mark:
            s += f" ctmark={self.mark:#x}"
        return s


@dataclass
class ConntrackTable:
    entries: list[CtEntry] = field(default_factory=list)
    _next: int = 1

    def lookup(self, p: Packet, zone: int = 0) -> tuple[CtEntry, CtDirection] | None:
        t = tuple_of(p)
        for e in self.entries:
            if e.zone != zone:
                continue
            if e.original == t:
                return e, CtDirection.ORIGINAL
            if e.reply == t:
                return e, CtDirection.REPLY
        return None

    def new_entry(self, p: Packet, zone: int = 0) -> CtEntry:
        t = tuple_of(p)
        e = CtEntry(original=t, reply=t.inverse(), zone=zone, ident=self._next)
        self._next += 1
        return e

    def confirm(self, e: CtEntry) -> None:
        if not e.confirmed:
            e.confirmed = True
            self.entries.append(e)


def classify_new(p: Packet) -> CtState:
    """State of a packet with no conntrack entry (nf_conntrack_tcp_loose=1)."""
    if p.protocol != "tcp":
        return CtState.NEW
    flags = p.tcp_flags
    if "SYN" in flags and "ACK" not in flags:
        return CtState.NEW
    if "ACK" in flags and not ({"SYN", "RST", "FIN"} & flags):
        return CtState.NEW  # picked up mid-stream
    return CtState.INVALID


def apply_state(p: Packet, e: CtEntry | None, d: CtDirection, state: CtState) -> Packet:
    return replace(p, ctstate=state, ctdir=d, ctmark=e.mark if e else 0)
