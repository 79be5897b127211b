"""A connection's story: its verdict, the findings that explain it, and the hops (kernel traces, Envoy's decisions).

Serialised with `to_dict()` and read back with `from_dict()`: stored results and diagrams use the same model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from meshviz.engine.core.trace import Trace

#: The verdict's fields, in order (the JSON contract of `story --format json`).
#: app_reached: the application's accept() returned for this connection; app_peer_ip: the peer it sees then;
#: app_would_see: the peer it would have seen when its listening socket answered but the handshake never
#: completed (the SYN-ACK was lost), else null.
INBOUND_VERDICT_FIELDS = (
    "client_connected",
    "intercepted",
    "app_reached",
    "app_peer_ip",
    "app_would_see",
    "loop",
    "failure",
)
OUTBOUND_VERDICT_FIELDS = ("intercepted", "loop", "destination_reached", "destination_peer_ip", "failure")
#: A UDP datagram the application (or any local uid) sends, and its answer (direction "udp").
#: intercepted: the datagram reached the sidecar's DNS proxy, though addressed elsewhere; received_by: who gets it
#: (`dns-proxy`, `destination` - the address it was sent to, in or outside the pod -, or null); receiver_peer_ip:
#: the source address the receiver sees; reply_received: the answer reaches the sending (connected) socket;
#: reply_source: IP:PORT the answer comes from as the sender sees it (after conntrack undid any NAT), else null.
#: The title of a UDP story's answer hop: diagrams draw it as the reply path.
UDP_ANSWER_TITLE = "the answer"
UDP_VERDICT_FIELDS = ("intercepted", "received_by", "receiver_peer_ip", "reply_received", "reply_source", "failure")


class Failure(StrEnum):
    """Why a connection fails, one code per cause (the interface of REPLY_ESCAPES is a field of the verdict)."""

    NO_ROUTE = "NO_ROUTE"  # no route (or no address of the family) for the packet
    NO_LISTENER = "NO_LISTENER"  # nothing listens: the SYN is refused
    DROPPED = "DROPPED"  # a rule dropped or rejected the SYN
    UNSUPPORTED = "UNSUPPORTED"  # the evidence uses something the simulator does not model (named in the trace)
    REPLY_ESCAPES = "REPLY_ESCAPES"  # the SYN-ACK leaves the pod through an interface instead of returning
    REPLY_DROPPED = "REPLY_DROPPED"  # the SYN-ACK is dropped
    TIMEOUT = "TIMEOUT"  # no answer
    LOOP = "LOOP"  # Envoy's upstream connection is captured by Envoy again
    EPERM_TRANSPARENT = "EPERM_TRANSPARENT"  # the proxy may not bind a foreign address (no CAP_NET_ADMIN)
    UPSTREAM_CONNECT_FAILURE = "UPSTREAM_CONNECT_FAILURE"  # Envoy's upstream connection fails (503 UF)
    NO_FILTER_CHAIN = "NO_FILTER_CHAIN"  # Envoy's listener has no filter chain for the connection
    DOWNSTREAM_TLS_REQUIRED = "DOWNSTREAM_TLS_REQUIRED"  # the pod accepts only mTLS
    NO_CLUSTER = "NO_CLUSTER"  # the route names no cluster Envoy has
    NO_HEALTHY_UPSTREAM = "NO_HEALTHY_UPSTREAM"  # the cluster has no endpoint (503 UH)
    # UDP: the answer comes back from an address the sending socket is not connected to (conntrack did not undo
    # the NAT, e.g. the reply was tracked in another zone): no socket takes it
    REPLY_UNMATCHED = "REPLY_UNMATCHED"


_REPLY_ESCAPES_PREFIX = "REPLY_ESCAPES_VIA_"


def failure_code(failure: Failure | None, interface: str | None = None) -> str | None:
    """The failure as the JSON contract spells it: `REPLY_ESCAPES_VIA_<interface>` names the interface."""
    if failure is None:
        return None
    if failure is Failure.REPLY_ESCAPES:
        return f"{_REPLY_ESCAPES_PREFIX}{interface}"
    return failure.value


def parse_failure_code(code: str | None) -> tuple[Failure | None, str | None]:
    """`failure_code`'s inverse (for stored results): the failure and, for REPLY_ESCAPES, the interface."""
    if code is None:
        return None, None
    if code.startswith(_REPLY_ESCAPES_PREFIX):
        return Failure.REPLY_ESCAPES, code[len(_REPLY_ESCAPES_PREFIX) :]
    return Failure(code), None


@dataclass(frozen=True)
class Verdict:
    """What happened to a connection, field by field (the kernel tests compare every field with Linux).

    Inbound: client_connected, intercepted, app_reached, app_peer_ip, app_would_see, loop, failure.
    Outbound: intercepted, loop, destination_reached, destination_peer_ip, failure.
    UDP: intercepted, received_by, receiver_peer_ip, reply_received, reply_source, failure.
    """

    direction: str  # inbound | outbound
    intercepted: bool = False
    loop: bool = False
    failure: Failure | None = None
    failure_interface: str | None = None  # the interface a REPLY_ESCAPES reply leaves through
    client_connected: bool = False
    app_reached: bool = False
    app_peer_ip: str | None = None
    app_would_see: str | None = None
    destination_reached: bool = False
    destination_peer_ip: str | None = None
    received_by: str | None = None
    receiver_peer_ip: str | None = None
    reply_received: bool = False
    reply_source: str | None = None

    @property
    def fields(self) -> tuple[str, ...]:
        if self.direction == "udp":
            return UDP_VERDICT_FIELDS
        return INBOUND_VERDICT_FIELDS if self.direction == "inbound" else OUTBOUND_VERDICT_FIELDS

    @property
    def failure_code(self) -> str | None:
        return failure_code(self.failure, self.failure_interface)

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract: the direction's fields in order, the failure as its code."""
        return {k: (self.failure_code if k == "failure" else getattr(self, k)) for k in self.fields}

    @classmethod
    def from_dict(cls, direction: str, d: dict[str, Any]) -> Verdict:
        failure, iface = parse_failure_code(d.get("failure"))
        known = {k: v for k, v in d.items() if k != "failure" and k in cls.__dataclass_fields__}
        return cls(direction=direction, failure=failure, failure_interface=iface, **known)


def changed_fields(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> list[str]:
    """The verdict fields whose values differ (the one verdict diff: what-if, the analysis diff and the mode
    comparison all use it), sorted; a missing verdict counts as every field unset."""
    b, a = before or {}, after or {}
    return sorted(k for k in b.keys() | a.keys() if b.get(k) != a.get(k))


@dataclass(frozen=True)
class Finding:
    """One explanation.  kind: cause | fact | assumption | warning."""

    kind: str
    text: str
    refs: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "text": self.text, "refs": list(self.refs)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Finding:
        return cls(d["kind"], d["text"], tuple(d.get("refs") or ()))


@dataclass(frozen=True)
class StoryHop:
    """One hop of the story: a kernel trace, or a decision Envoy took."""

    title: str
    node: str  # client | pod-kernel | envoy | application
    detail: str
    trace: Trace | None = None
    steps: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"title": self.title, "node": self.node, "detail": self.detail, "steps": list(self.steps)}
        if self.trace is not None:
            d["trace"] = self.trace.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StoryHop:
        return cls(
            title=d["title"],
            node=d["node"],
            detail=d["detail"],
            trace=Trace.from_dict(d["trace"]) if d.get("trace") else None,
            steps=tuple(d.get("steps") or ()),
        )


@dataclass(frozen=True)
class Story:
    direction: str
    verdict: Verdict
    findings: tuple[Finding, ...]
    hops: tuple[StoryHop, ...]
    summary: str
    facts: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "direction": self.direction,
            "summary": self.summary,
            "facts": dict(self.facts),
            "verdict": self.verdict.to_dict(),
            "findings": [f.to_dict() for f in self.findings],
            "traces": [h.to_dict() for h in self.hops],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Story:
        """The Story that `to_dict()` produced (extra keys, such as a stored result's `connection`, are ignored)."""
        return cls(
            direction=d["direction"],
            verdict=Verdict.from_dict(d["direction"], dict(d["verdict"])),
            findings=tuple(Finding.from_dict(f) for f in d["findings"]),
            hops=tuple(StoryHop.from_dict(h) for h in d["traces"]),
            summary=d["summary"],
            facts=dict(d.get("facts") or {}),
        )


def with_assumption(story: Story, text: str) -> Story:
    return replace(story, findings=(Finding("assumption", text), *story.findings))
