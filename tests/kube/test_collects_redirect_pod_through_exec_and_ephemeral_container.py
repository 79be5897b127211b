"""A REDIRECT Istio pod collected for real (exec + ephemeral container over the real client) gives evidence
the engine parses, and the story says what the real pod does: the application sees 127.0.0.6."""

from __future__ import annotations

from kubernetes import client as k8s

from meshviz.collect.capture import CONFIG_DUMP_COMMAND
from meshviz.collect.collect import collect_pod
from meshviz.engine.netfilter.parser import parse_iptables
from meshviz.engine.pipeline.evidence import story_for
from tests.kube.fake_apiserver import FakeApiServer, redirect_data
from tests.kube.helpers import CLIENT, POD, REDIRECT_NS, evidence


def test_collects_redirect_pod_through_exec_and_ephemeral_container(
    fake_apiserver: FakeApiServer, api: k8s.ApiClient
) -> None:
    seen: list[tuple[str, str]] = []
    c = collect_pod(api, REDIRECT_NS, POD, progress=lambda step, state, detail: seen.append((step, state)))

    assert not c.reconstructed
    assert (c.pod_ip, c.node, c.namespace, c.pod_name) == ("172.16.188.31", "192.168.0.19", REDIRECT_NS, POD)
    assert (c.proxy_uid, c.proxy_gid, c.app_ports) == (1337, 1337, [8083])
    assert (c.interception_mode, c.istio_version) == ("REDIRECT", "1.18.2")
    assert c.labels["service.istio.io/canonical-name"] == "geo"
    assert "sidecar.istio.io/status" in c.annotations

    # the config dump came over the exec websocket, with exactly pilot-agent's command
    execs = [r for r in fake_apiserver.requests if r.path.endswith("/exec")]
    assert len(execs) == 1 and execs[0].websocket
    assert execs[0].command == list(CONFIG_DUMP_COMMAND)
    assert execs[0].query["container"] == ["istio-proxy"]
    assert not fake_apiserver.requests_to("GET", r":15000/proxy/")

    # the rules are what the pod's legacy backend holds (not the empty nft tables), parsed like an upload
    want = parse_iptables(redirect_data().iptables_legacy).rulesets
    assert parse_iptables(c.iptables).rulesets[0].tables == want[0].tables
    assert "32766:\tfrom all lookup main" in c.ip_rule
    assert "default via 172.16.188.1 dev eth0" in c.ip_route
    assert "net.ipv4.tcp_fwmark_accept = 0" in c.sysctl and "somaxconn" not in c.sysctl

    story = story_for(evidence(c), client=CLIENT, port=8083)
    assert story.verdict.app_reached is True
    assert story.verdict.app_peer_ip == "127.0.0.6"
    assert story.verdict.failure_code is None

    assert [s for s, state in seen if state == "started"] == ["pod", "config_dump", "netfilter"]
    assert seen[-1] == ("done", "done")
    assert [s["step"] for s in c.steps] == ["pod", "config_dump", "netfilter", "done"]
