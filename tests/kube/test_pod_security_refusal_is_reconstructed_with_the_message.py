"""A namespace enforcing Pod Security "baseline" or "restricted" refuses the capture container (root,
NET_ADMIN, NET_RAW): the collection is reconstructed and the notes carry the API server's message."""

from __future__ import annotations

import pytest
from kubernetes import client as k8s

from meshviz.collect.collect import collect_pod
from tests.kube.fake_apiserver import FakeApiServer
from tests.kube.helpers import POD, REDIRECT_NS


@pytest.mark.parametrize("status", [403, 422])
@pytest.mark.parametrize("level", ["baseline", "restricted"])
def test_pod_security_refusal_is_reconstructed_with_the_message(
    fake_apiserver: FakeApiServer, api: k8s.ApiClient, level: str, status: int
) -> None:
    fake_apiserver.scenario.enforce_pod_security(level, status)
    c = collect_pod(api, REDIRECT_NS, POD)

    (patch,) = fake_apiserver.requests_to("PATCH", "/ephemeralcontainers$")
    assert patch.status == status
    name = patch.body["spec"]["ephemeralContainers"][0]["name"]
    assert c.reconstructed and not fake_apiserver.captures
    note = next(n for n in c.notes if n.startswith("reconstructed, not captured"))
    assert f'pods "{POD}" is forbidden: violates PodSecurity "{level}:latest": ' in note
    if level == "baseline":
        assert (
            f'non-default capabilities (containers "istio-init", "{name}" must not include "NET_ADMIN", "NET_RAW" '
            "in securityContext.capabilities.add)"
        ) in note
    else:
        assert f'runAsUser=0 (containers "istio-init", "{name}" must not set runAsUser=0)' in note
        assert (
            f'runAsNonRoot != true (containers "istio-init", "{name}" must not set securityContext.runAsNonRoot=false)'
            in note
        )
    assert f"({status})" in note
    assert c.envoy_config_dump  # exec still worked
    assert c.iptables and "-A ISTIO_INBOUND" in c.iptables
