"""capabilities() asks one SelfSubjectAccessReview per permission and reports what RBAC allows."""

from __future__ import annotations

from kubernetes import client as k8s

from meshviz.collect.kube import CAPABILITY_CHECKS, capabilities
from tests.kube.fake_apiserver import FakeApiServer


def test_capabilities_from_access_review(fake_apiserver: FakeApiServer, api: k8s.ApiClient) -> None:
    fake_apiserver.scenario.forbid("patch", "pods", "ephemeralcontainers")
    fake_apiserver.scenario.forbid("get", "pods", "proxy")
    caps = capabilities(api, "hr2")
    assert caps == {
        "list_namespaces": True,
        "list_pods": True,
        "get_pods": True,
        "create_pods_exec": True,
        "patch_pods_ephemeralcontainers": False,
        "get_pods_log": True,
        "get_pods_proxy": False,
    }
    reviews = fake_apiserver.requests_to("POST", "/selfsubjectaccessreviews$")
    attrs = [r.body["spec"]["resourceAttributes"] for r in reviews]
    assert len(attrs) == len(CAPABILITY_CHECKS)
    assert {
        "verb": "patch",
        "resource": "pods",
        "subresource": "ephemeralcontainers",
        "group": "",
        "namespace": "hr2",
    } in attrs
    assert {"verb": "list", "resource": "namespaces", "group": ""} in attrs  # cluster-scoped: no namespace
