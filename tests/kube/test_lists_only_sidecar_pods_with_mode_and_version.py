"""Browsing: namespaces, then only the pods with an Istio sidecar, with interception mode, version and IP."""

from __future__ import annotations

from kubernetes import client as k8s

from meshviz.collect.discover import list_namespaces, list_pods
from tests.kube.fake_apiserver import FakeApiServer
from tests.kube.helpers import POD, REDIRECT_NS, TPROXY_NS


def test_lists_only_sidecar_pods_with_mode_and_version(fake_apiserver: FakeApiServer, api: k8s.ApiClient) -> None:
    assert list_namespaces(api) == ["default", "hr2", "hr2-tproxy", "istio-system"]

    pods = list_pods(api, REDIRECT_NS)
    assert [p.to_dict() for p in pods] == [
        {
            "name": POD,
            "namespace": REDIRECT_NS,
            "pod_ip": "172.16.188.31",
            "node": "192.168.0.19",
            "phase": "Running",
            "ready": True,
            "has_sidecar": True,
            "interception_mode": "REDIRECT",
            "istio_version": "1.18.2",
        }
    ]
    everything = list_pods(api, REDIRECT_NS, sidecar_only=False)
    assert [(p.name, p.has_sidecar, p.interception_mode) for p in everything] == [
        (POD, True, "REDIRECT"),
        ("redis-0", False, ""),
    ]
    assert [(p.interception_mode, p.istio_version) for p in list_pods(api, TPROXY_NS)] == [("TPROXY", "1.18.2")]


def test_mode_from_istio_init_args_when_no_annotation(fake_apiserver: FakeApiServer, api: k8s.ApiClient) -> None:
    pod = fake_apiserver.scenario.pod(TPROXY_NS, POD)
    del pod["metadata"]["annotations"]["sidecar.istio.io/interceptionMode"]
    assert [p.interception_mode for p in list_pods(api, TPROXY_NS)] == ["TPROXY"]
