"""The story entry point on fuzzed evidence: a story (whose traces may end in a named LIMIT step) or ParseErrors —
never an exception — within the time and memory bound."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from meshviz.engine.core.errors import ParseError
from meshviz.engine.core.trace import StepKind
from meshviz.engine.pipeline.pod import run_story
from tests.fuzz import strategies as s
from tests.fuzz.harness import bounded, examples, note_limit

POD_IP = "10.0.0.10"


@given(
    iptables=s.iptables_text,
    ip_rule=st.none() | s.ip_rule_text,
    ip_route=st.none() | s.ip_route_text,
    sysctl=st.none() | s.sysctl_text,
    envoy=st.none() | s.envoy_text,
    conn=s.connections,
)
@example(
    iptables=s.fan_out(20, False),
    ip_rule=None,
    ip_route=None,
    sysctl=None,
    envoy=None,
    conn={"direction": "inbound", "client": "10.1.1.1:40000", "port": 8080},
)
@example(
    iptables=s.fan_out(30, True),
    ip_rule=None,
    ip_route=None,
    sysctl=None,
    envoy=None,
    conn={"direction": "outbound", "dst": "203.0.113.10:443", "app_uid": 1000, "app_gid": 1000},
)
@settings(max_examples=examples("story", 10))
def test_story(
    iptables: str,
    ip_rule: str | None,
    ip_route: str | None,
    sysctl: str | None,
    envoy: str | None,
    conn: dict[str, Any],
) -> None:
    kwargs: dict[str, Any] = {
        "iptables": iptables,
        "ip_rule": ip_rule,
        "ip_route": ip_route,
        "sysctl": sysctl,
        "envoy": envoy,
        "pod_ip": POD_IP,
    }
    if conn["direction"] == "inbound":
        kwargs.update(client=conn["client"], port=conn["port"])
    else:
        kwargs.update(direction="outbound", dst=conn["dst"], app_uid=conn["app_uid"], app_gid=conn["app_gid"])
    result = bounded("story", kwargs, lambda: run_story(**kwargs))
    assert all(isinstance(e, ParseError) for e in result.errors)
    if result.story is not None:
        story = result.story
        story.to_dict()
        steps = [step for hop in story.hops if hop.trace is not None for step in hop.trace.steps()]
        if any(step.kind == StepKind.LIMIT for step in steps):
            note_limit("story")
    else:
        assert result.errors


@given(nftables=s.nftables_text, iptables=st.none() | s.iptables_text, conn=s.connections)
@example(  # a chain that jumps to itself (nft refuses it at load time): the jump depth limit, named
    nftables="add table inet t\nadd chain inet t pre { type nat hook prerouting priority -100 ; }\n"
    "add chain inet t c0\nadd rule inet t c0 jump c0\nadd rule inet t pre jump c0\n",
    iptables=None,
    conn={"direction": "inbound", "client": "10.1.1.1:40000", "port": 8080},
)
@settings(max_examples=examples("story-nftables", 10))
def test_story_nftables(nftables: str, iptables: str | None, conn: dict[str, Any]) -> None:
    """The same for native nftables evidence, alone or beside iptables rules."""
    kwargs: dict[str, Any] = {"nftables": nftables, "iptables": iptables, "pod_ip": POD_IP}
    if conn["direction"] == "inbound":
        kwargs.update(client=conn["client"], port=conn["port"])
    else:
        kwargs.update(direction="outbound", dst=conn["dst"], app_uid=conn["app_uid"], app_gid=conn["app_gid"])
    result = bounded("story-nftables", kwargs, lambda: run_story(**kwargs))
    assert all(isinstance(e, ParseError) for e in result.errors)
    if result.story is not None:
        result.story.to_dict()
    else:
        assert result.errors
