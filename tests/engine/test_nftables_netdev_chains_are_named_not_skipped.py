"""nft's netdev `ingress`/`egress` base chains are not simulated: a packet that would pass one on its device gets a
named assumption step saying so (UNSUPPORTED, assumed to pass), never a silent skip; chains on other devices are not
mentioned."""

from __future__ import annotations

from pathlib import Path

from meshviz.engine.core.trace import StepAction
from meshviz.engine.pipeline.pod import run_story
from meshviz.engine.story.model import Story

ISTIO = (Path(__file__).resolve().parents[1] / "fixtures" / "istio-nftables" / "capture" / "tproxy.golden").read_text()


def _netdev(hook: str, device: str) -> str:
    return (
        "add table netdev edge\n"
        f'add chain netdev edge {hook} {{ type filter hook {hook} device "{device}" priority filter ; policy accept ; }}\n'
        f"add rule netdev edge {hook} ip saddr 10.9.9.9 drop\n"
    )


def _netdev_steps(story: Story) -> list[str]:
    return [
        s.detail
        for h in story.hops
        if h.trace is not None
        for s in h.trace.steps()
        if "netdev" in s.detail and s.action is StepAction.ASSUME
    ]


def _inbound(extra: str) -> Story:
    r = run_story(nftables=ISTIO + extra, pod_ip="10.0.0.10", direction="inbound", client="10.1.1.1:40000", port=8080)
    assert r.story is not None
    return r.story


def test_an_ingress_chain_on_the_packets_device_is_a_named_unsupported_assumption() -> None:
    steps = _netdev_steps(_inbound(_netdev("ingress", "eth0")))
    assert steps and all("nft chain netdev edge ingress" in s and "UNSUPPORTED" in s for s in steps)
    assert "device eth0" in steps[0] and "assumed to pass it" in steps[0]


def test_an_ingress_chain_on_another_device_is_not_mentioned() -> None:
    assert _netdev_steps(_inbound(_netdev("ingress", "eth1"))) == []


def test_the_verdict_is_the_one_without_the_chain() -> None:
    assert _inbound(_netdev("ingress", "eth0")).verdict == _inbound("").verdict


def test_an_egress_chain_on_the_device_a_packet_leaves_by_is_named() -> None:
    r = run_story(
        nftables=ISTIO + _netdev("egress", "eth0"),
        pod_ip="10.0.0.10",
        direction="outbound",
        dst="203.0.113.10:443",
        app_uid=1000,
        app_gid=1000,
    )
    assert r.story is not None
    steps = _netdev_steps(r.story)
    assert steps and "netdev egress, device eth0" in steps[0]
