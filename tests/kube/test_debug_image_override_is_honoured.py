"""debug_image= overrides the capture image (and the notes say so); with exec forbidden, a non-Istio image
reads the dump with curl from 127.0.0.1:15000; an image without a shell is a clear exec_unsupported error."""

from __future__ import annotations

import pytest
from kubernetes import client as k8s

from meshviz.collect.collect import collect_pod
from meshviz.collect.errors import CollectError
from tests.kube.fake_apiserver import FakeApiServer
from tests.kube.helpers import POD, REDIRECT_NS

NETSHOOT = "registry.example.com/mirror/nicolaka/netshoot:v0.13"


def test_debug_image_override_is_honoured(fake_apiserver: FakeApiServer, api: k8s.ApiClient) -> None:
    fake_apiserver.scenario.forbid("create", "pods", "exec")
    c = collect_pod(api, REDIRECT_NS, POD, debug_image=NETSHOOT)

    (run,) = fake_apiserver.captures.values()
    assert run.container["image"] == NETSHOOT
    assert any(NETSHOOT in n and "debug_image override" in n for n in c.notes)
    assert "\ncurl\n" in run.log  # netshoot has no pilot-agent: curl read the admin listener
    assert any("capture container" in n and "with curl" in n for n in c.notes)
    assert c.envoy_config_dump and not fake_apiserver.requests_to("GET", r":15000/proxy/")
    assert "net.ipv4.tcp_fwmark_accept = 0" in c.sysctl  # netshoot's sysctl -a, filtered


def test_image_without_a_shell_is_exec_unsupported(fake_apiserver: FakeApiServer, api: k8s.ApiClient) -> None:
    image = "gcr.io/distroless/static-debian12:nonroot"
    fake_apiserver.scenario.image_tools[image] = None
    with pytest.raises(CollectError) as e:
        collect_pod(api, REDIRECT_NS, POD, debug_image=image)
    assert (e.value.kind, e.value.step, e.value.retryable) == ("exec_unsupported", "netfilter", False)
    assert "StartError" in e.value.message and image in e.value.message and "/bin/sh" in e.value.message
    assert not fake_apiserver.requests_to("GET", "/log$")
