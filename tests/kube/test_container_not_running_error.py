"""istio-proxy not running - seen in the pod status, or only when exec says so - is container_not_running."""

from __future__ import annotations

import pytest
from kubernetes import client as k8s

from meshviz.collect.collect import collect_pod
from meshviz.collect.errors import CollectError
from tests.kube.fake_apiserver import FakeApiServer
from tests.kube.helpers import POD, REDIRECT_NS


def test_proxy_waiting_in_pod_status(fake_apiserver: FakeApiServer, api: k8s.ApiClient) -> None:
    fake_apiserver.scenario.set_proxy_state(REDIRECT_NS, POD, {"waiting": {"reason": "CrashLoopBackOff"}})
    with pytest.raises(CollectError) as e:
        collect_pod(api, REDIRECT_NS, POD)
    assert (e.value.kind, e.value.step) == ("container_not_running", "pod")
    assert "istio-proxy" in e.value.message and "CrashLoopBackOff" in e.value.message
    assert fake_apiserver.writes() == [] and not fake_apiserver.requests_to("GET", "/exec$")


@pytest.mark.parametrize(
    "message",
    ['container not found ("istio-proxy")', "container istio-proxy is not running"],
)
def test_exec_refused_because_container_not_running(
    fake_apiserver: FakeApiServer, api: k8s.ApiClient, message: str
) -> None:
    fake_apiserver.scenario.exec_http_error = (400, message)
    with pytest.raises(CollectError) as e:
        collect_pod(api, REDIRECT_NS, POD)
    assert (e.value.kind, e.value.step) == ("container_not_running", "config_dump")
    assert message in e.value.message
    assert not fake_apiserver.requests_to("GET", r":15000/proxy/")  # no point trying the admin port
    assert fake_apiserver.writes() == []
