"""Order of the config dump attempts: exec in istio-proxy -> the capture container -> Envoy's admin port
through the API server's pod proxy; when all fail, one clear error names each attempt."""

from __future__ import annotations

import json

import pytest
from kubernetes import client as k8s

from meshviz.collect.collect import collect_pod
from meshviz.collect.errors import CollectError
from tests.kube.fake_apiserver import FakeApiServer
from tests.kube.helpers import POD, REDIRECT_NS


def test_capture_refused_too_uses_admin_port_proxy(fake_apiserver: FakeApiServer, api: k8s.ApiClient) -> None:
    fake_apiserver.scenario.forbid("create", "pods", "exec")
    fake_apiserver.scenario.forbid("patch", "pods", "ephemeralcontainers")
    c = collect_pod(api, REDIRECT_NS, POD)

    proxied = fake_apiserver.requests_to("GET", rf"/pods/{POD}:15000/proxy/config_dump$")
    assert len(proxied) == 1 and proxied[0].status == 200
    assert json.loads(c.envoy_config_dump)["configs"]
    assert c.reconstructed and not fake_apiserver.captures
    note = next(n for n in c.notes if "admin port 15000" in n)
    assert "pods/exec" in note and "refused" in note


def test_capture_image_without_a_client_uses_admin_port_proxy(
    fake_apiserver: FakeApiServer, api: k8s.ApiClient
) -> None:
    fake_apiserver.scenario.forbid("create", "pods", "exec")
    c = collect_pod(api, REDIRECT_NS, POD, debug_image="registry.example.com/tools/iptables:1.8.7")

    assert not c.reconstructed and len(fake_apiserver.captures) == 1  # the rules were still captured
    assert len(fake_apiserver.requests_to("GET", r":15000/proxy/config_dump$")) == 1
    note = next(n for n in c.notes if "admin port 15000" in n)
    assert "no pilot-agent, curl or wget" in note


def test_every_attempt_failing_is_one_clear_error(fake_apiserver: FakeApiServer, api: k8s.ApiClient) -> None:
    fake_apiserver.scenario.forbid("create", "pods", "exec")
    fake_apiserver.scenario.forbid("patch", "pods", "ephemeralcontainers")
    fake_apiserver.scenario.admin_port_status = 503  # Envoy's admin port is bound to 127.0.0.1
    with pytest.raises(CollectError) as e:
        collect_pod(api, REDIRECT_NS, POD, backoff=0.01)
    assert (e.value.kind, e.value.step, e.value.retryable) == ("forbidden", "config_dump", False)
    message = e.value.message
    assert message.index("(1) exec pilot-agent") < message.index("(2) the capture container")
    assert message.index("(2) the capture container") < message.index("(3) admin port 15000: GET")
    assert "pods/exec" in message and "pods/ephemeralcontainers" in message and "connection refused" in message


def test_exec_and_admin_port_forbidden_and_no_client_in_the_capture(
    fake_apiserver: FakeApiServer, api: k8s.ApiClient
) -> None:
    fake_apiserver.scenario.forbid("create", "pods", "exec")
    fake_apiserver.scenario.forbid("get", "pods", "proxy")
    with pytest.raises(CollectError) as e:
        collect_pod(api, REDIRECT_NS, POD, debug_image="registry.example.com/tools/iptables:1.8.7")
    assert (e.value.kind, e.value.step) == ("forbidden", "config_dump")
    assert "pods/exec" in e.value.message and "pods/proxy" in e.value.message
    assert "no pilot-agent, curl or wget" in e.value.message
