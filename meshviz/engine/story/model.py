"""A connection's story: its verdict, the findings that explain it, and the hops (kernel traces, Envoy's decisions).

Serialised with `to_dict()` and read back with `from_dict()`: stored results and diagrams use the same model.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
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
    verdict: dict[str, Any]
    findings: tuple[Finding, ...]
    hops: tuple[StoryHop, ...]
    summary: str
    facts: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "direction": self.direction,
            "summary": self.summary,
            "facts": dict(self.facts),
            "verdict": dict(self.verdict),
            "findings": [f.to_dict() for f in self.findings],
            "traces": [h.to_dict() for h in self.hops],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Story:
        """The Story that `to_dict()` produced (extra keys, such as a stored result's `connection`, are ignored)."""
        return cls(
            direction=d["direction"],
            verdict=dict(d["verdict"]),
            findings=tuple(Finding.from_dict(f) for f in d["findings"]),
            hops=tuple(StoryHop.from_dict(h) for h in d["traces"]),
            summary=d["summary"],
            facts=dict(d.get("facts") or {}),
        )


def with_assumption(story: Story, text: str) -> Story:
    return replace(story, findings=(Finding("assumption", text), *story.findings))
