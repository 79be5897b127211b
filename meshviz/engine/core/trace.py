"""Traces, after Batfish: a Trace is a list of Hops, each a list of Steps.

A Step records one decision the kernel took (a rule matched, a chain was
entered, a routing lookup returned a route, a socket was found...).  Every
step that comes from a rule cites its table, chain, 1-based index and the
original line.  A Trace ends in a Disposition.  Traces serialise to JSON and
back without loss (`to_dict` / `from_dict`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import Enum, StrEnum
from typing import Any

from meshviz.engine.core.model import CtDirection, CtState, Packet
from meshviz.engine.core.netaddr import parse_ip


class StepKind(StrEnum):
    HOOK = "Hook"  # entering a netfilter hook (PREROUTING, ...)
    TABLE = "Table"  # entering a table's base chain at a hook
    RULE_MATCH = "RuleMatch"
    CHAIN_JUMP = "ChainJump"
    RETURN = "Return"
    POLICY = "Policy"
    CONNTRACK = "Conntrack"
    ROUTING_LOOKUP = "RoutingLookup"
    TRANSFORMATION = "Transformation"
    SOCKET_LOOKUP = "SocketLookup"
    LOOPBACK = "Loopback"
    DELIVERED = "Delivered"
    EXITS = "Exits"
    BRANCH = "Branch"
    ASSUMPTION = "Assumption"
    UNSUPPORTED = "Unsupported"
    LIMIT = "Limit"  # a simulation bound was reached (`limits.py`): the trace stops here, explained
    DROP = "Drop"


class StepAction(StrEnum):
    ENTER = "ENTER"
    MATCHED = "MATCHED"
    JUMP = "JUMP"
    GOTO = "GOTO"
    RETURN = "RETURN"
    CONTINUE = "CONTINUE"  # non-terminating target (LOG, MARK, CONNMARK...)
    ACCEPT = "ACCEPT"
    DROP = "DROP"
    REJECT = "REJECT"
    TRANSFORM = "TRANSFORM"
    ROUTED = "ROUTED"
    NO_ROUTE = "NO_ROUTE"
    FOUND = "FOUND"
    NOT_FOUND = "NOT_FOUND"
    DELIVER = "DELIVER"
    EXIT = "EXIT"
    ASSUME = "ASSUME"
    UNSUPPORTED = "UNSUPPORTED"
    CHOOSE = "CHOOSE"


class Disposition(StrEnum):
    DELIVERED_LOCAL = "DELIVERED_LOCAL"  # reached local input, no socket table to say who took it
    ACCEPTED_TO_SOCKET = "ACCEPTED_TO_SOCKET"  # a known socket accepted it
    FORWARDED = "FORWARDED"
    EXITS_INTERFACE = "EXITS_INTERFACE"
    DROPPED = "DROPPED"
    REJECTED = "REJECTED"
    NO_ROUTE = "NO_ROUTE"
    NO_SOCKET = "NO_SOCKET"  # delivered locally but nothing listens: RST
    LOOP = "LOOP"
    UNSUPPORTED = "UNSUPPORTED"


@dataclass(frozen=True)
class Step:
    kind: StepKind
    action: StepAction
    detail: str
    hook: str | None = None
    table: str | None = None
    chain: str | None = None
    index: int | None = None  # 1-based rule index inside the chain
    rule: str | None = None  # the rule's original text
    source: str | None = None
    line: int | None = None
    packet: Packet | None = None  # the packet after this step, when it changed

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind.value, "action": self.action.value, "detail": self.detail}
        for f in ("hook", "table", "chain", "index", "rule", "source", "line"):
            v = getattr(self, f)
            if v is not None:
                d[f] = v
        if self.packet is not None:
            d["packet"] = packet_to_dict(self.packet)
        return d

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Step:
        return Step(
            kind=StepKind(d["kind"]),
            action=StepAction(d["action"]),
            detail=d["detail"],
            hook=d.get("hook"),
            table=d.get("table"),
            chain=d.get("chain"),
            index=d.get("index"),
            rule=d.get("rule"),
            source=d.get("source"),
            line=d.get("line"),
            packet=packet_from_dict(d["packet"]) if d.get("packet") else None,
        )


@dataclass(frozen=True)
class Hop:
    """One place the packet passes: a hook, a routing decision, a device."""

    node: str  # e.g. "pod", "client"
    name: str  # e.g. "PREROUTING", "routing (input)", "lo"
    steps: tuple[Step, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "name": self.name, "steps": [s.to_dict() for s in self.steps]}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Hop:
        return Hop(node=d["node"], name=d["name"], steps=tuple(Step.from_dict(s) for s in d["steps"]))


@dataclass(frozen=True)
class Trace:
    packet: Packet  # the packet as it started
    hops: tuple[Hop, ...]
    disposition: Disposition
    detail: str
    final_packet: Packet | None = None
    socket: str | None = None  # description of the accepting socket, if any
    interface: str | None = None  # exit interface for EXITS_INTERFACE / FORWARDED
    branch: tuple[str, ...] = ()  # choices taken at statistic/random branches
    assumptions: tuple[str, ...] = field(default_factory=tuple)

    def steps(self) -> list[Step]:
        return [s for h in self.hops for s in h.steps]

    def rules_hit(self) -> list[Step]:
        return [s for s in self.steps() if s.kind == StepKind.RULE_MATCH]

    def to_dict(self) -> dict[str, Any]:
        return {
            "packet": packet_to_dict(self.packet),
            "hops": [h.to_dict() for h in self.hops],
            "disposition": self.disposition.value,
            "detail": self.detail,
            "final_packet": packet_to_dict(self.final_packet) if self.final_packet else None,
            "socket": self.socket,
            "interface": self.interface,
            "branch": list(self.branch),
            "assumptions": list(self.assumptions),
        }

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Trace:
        return Trace(
            packet=packet_from_dict(d["packet"]),
            hops=tuple(Hop.from_dict(h) for h in d["hops"]),
            disposition=Disposition(d["disposition"]),
            detail=d["detail"],
            final_packet=packet_from_dict(d["final_packet"]) if d.get("final_packet") else None,
            socket=d.get("socket"),
            interface=d.get("interface"),
            branch=tuple(d.get("branch", ())),
            assumptions=tuple(d.get("assumptions", ())),
        )


def packet_to_dict(p: Packet) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(p):
        v = getattr(p, f.name)
        if f.name in ("src", "dst"):
            v = str(v)
        elif f.name == "tcp_flags":
            v = sorted(v)
        elif isinstance(v, Enum):
            v = v.value
        out[f.name] = v
    return out


def packet_from_dict(d: dict[str, Any]) -> Packet:
    return Packet(
        src=parse_ip(d["src"]),
        dst=parse_ip(d["dst"]),
        protocol=d.get("protocol", "tcp"),
        sport=d.get("sport", 0),
        dport=d.get("dport", 0),
        tcp_flags=frozenset(d.get("tcp_flags", ())),
        in_iface=d.get("in_iface"),
        out_iface=d.get("out_iface"),
        mark=d.get("mark", 0),
        uid=d.get("uid"),
        gid=d.get("gid"),
        ctstate=CtState(d["ctstate"]) if d.get("ctstate") else None,
        ctdir=CtDirection(d.get("ctdir", "ORIGINAL")),
        ctmark=d.get("ctmark", 0),
    )


def render_text(trace: Trace) -> str:
    """A human-readable rendering: one line per step, grouped by hop."""
    lines = [f"packet: {trace.packet.describe()}"]
    if trace.branch:
        lines.append("branch: " + "; ".join(trace.branch))
    for a in trace.assumptions:
        lines.append(f"assumption: {a}")
    for hop in trace.hops:
        lines.append(f"[{hop.node}] {hop.name}")
        for s in hop.steps:
            where = ""
            if s.table and s.chain:
                where = f"{s.table}/{s.chain}"
                if s.index:
                    where += f"#{s.index}"
                where += ": "
            lines.append(f"    {s.action.value:<11} {where}{s.detail}")
            if s.rule:
                loc = f"  ({s.source}:{s.line})" if s.source and s.line else ""
                lines.append(f"                {s.rule}{loc}")
    lines.append(f"=> {trace.disposition.value}: {trace.detail}")
    return "\n".join(lines)
