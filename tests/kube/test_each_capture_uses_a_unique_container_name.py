"""Every capture adds a new ephemeral container with its own name (they can never be removed or reused),
and nothing else is written to the pod."""

from __future__ import annotations

from kubernetes import client as k8s

from meshviz.collect.collect import collect_pod
from tests.kube.fake_apiserver import FakeApiServer
from tests.kube.helpers import POD, REDIRECT_NS


def test_each_capture_uses_a_unique_container_name(fake_apiserver: FakeApiServer, api: k8s.ApiClient) -> None:
    for _ in range(3):
        collect_pod(api, REDIRECT_NS, POD)

    writes = fake_apiserver.writes()
    assert {(w.method, w.path.rsplit("/", 1)[-1]) for w in writes} == {("PATCH", "ephemeralcontainers")}
    names = [c["name"] for w in writes for c in w.body["spec"]["ephemeralContainers"]]
    assert len(names) == 3 == len(set(names))
    assert all(n.startswith("meshviz-capture-") for n in names)
    assert all(w.content_type == "application/strategic-merge-patch+json" for w in writes)

    spec = writes[0].body["spec"]["ephemeralContainers"][0]
    assert spec["targetContainerName"] == "istio-proxy"
    assert spec["securityContext"]["capabilities"]["add"] == ["NET_ADMIN", "NET_RAW"]
    assert spec["command"][:2] == ["sh", "-c"]
    assert len(fake_apiserver.scenario.pod(REDIRECT_NS, POD)["spec"]["ephemeralContainers"]) == 3
    # each log read named its own container
    logs = fake_apiserver.requests_to("GET", "/log$")
    assert [r.query["container"][0] for r in logs] == names
