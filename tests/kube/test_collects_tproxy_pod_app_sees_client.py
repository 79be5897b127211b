"""A TPROXY Istio pod (original_src, policy route to table 133) collected live: the captured policy routing
is there and the story says the application sees the client's own address."""

from __future__ import annotations

from kubernetes import client as k8s

from meshviz.collect.collect import collect_pod
from meshviz.engine.pipeline.evidence import story_for
from tests.kube.fake_apiserver import FakeApiServer
from tests.kube.helpers import CLIENT, POD, TPROXY_NS, evidence


def test_collects_tproxy_pod_app_sees_client(fake_apiserver: FakeApiServer, api: k8s.ApiClient) -> None:
    c = collect_pod(api, TPROXY_NS, POD)

    assert not c.reconstructed
    assert c.interception_mode == "TPROXY"
    assert (c.proxy_uid, c.proxy_gid) == (0, 1337)
    assert "fwmark 0x539 lookup 133" in c.ip_rule
    assert "local default dev lo table 133" in c.ip_route
    assert "-j TPROXY" in c.iptables

    story = story_for(evidence(c), client=CLIENT, port=8083)
    assert story.verdict.app_peer_ip == "10.244.1.7"
    assert story.verdict.failure_code is None
