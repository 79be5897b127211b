"""When the capture container is refused (RBAC 403, or an admission policy answering 422), the rules are
regenerated from istio-init's arguments with the engine's generator, and the collection says so.
(Pod Security admission's own refusal: test_pod_security_refusal_is_reconstructed_with_the_message.py.)"""

from __future__ import annotations

import pytest
from kubernetes import client as k8s

from meshviz.collect.collect import collect_pod
from meshviz.engine.istio.pod import settings_from_pod
from meshviz.engine.netfilter.parser import parse_iptables
from meshviz.engine.netfilter.render import render_ruleset
from tests.kube.fake_apiserver import FakeApiServer
from tests.kube.helpers import POD, REDIRECT_NS, TPROXY_NS


@pytest.mark.parametrize("refusal", ["rbac-403", "admission-policy-422"])
@pytest.mark.parametrize("namespace", [REDIRECT_NS, TPROXY_NS])
def test_ephemeral_forbidden_falls_back_to_reconstruction(
    fake_apiserver: FakeApiServer, api: k8s.ApiClient, refusal: str, namespace: str
) -> None:
    if refusal == "rbac-403":
        fake_apiserver.scenario.forbid("patch", "pods", "ephemeralcontainers")
    else:
        fake_apiserver.scenario.reject_ephemeral = (
            422,
            "ValidatingAdmissionPolicy 'deny-debug-containers' with binding 'deny-debug-containers' denied "
            "request: failed expression: !has(object.spec.ephemeralContainers)",
        )
    states: list[tuple[str, str]] = []
    c = collect_pod(api, namespace, POD, progress=lambda step, state, detail: states.append((step, state)))

    assert c.reconstructed
    assert any("reconstructed, not captured" in n for n in c.notes)
    if refusal != "rbac-403":
        assert any("(422)" in n and "deny-debug-containers" in n for n in c.notes)
    assert ("netfilter", "fallback") in states and ("reconstruct", "done") in states
    assert not fake_apiserver.captures  # nothing ran in the pod

    # exactly the generator's rules for the pod's istio-init arguments
    pod = fake_apiserver.scenario.pod(namespace, POD)
    generated = settings_from_pod(pod).generate()
    assert c.iptables == "".join(generated.text(f) for f in generated.families)
    reparsed = parse_iptables(c.iptables).rulesets
    assert [render_ruleset(r) for r in reparsed] == [render_ruleset(r) for r in generated.rulesets]
    if namespace == TPROXY_NS:
        assert c.ip_rule == "ip rule add fwmark 1337 lookup 133\n"
        assert c.ip_route == "ip route add local default dev lo table 133\n"
    else:
        assert c.ip_rule == "" and c.ip_route == ""
    assert c.sysctl == ""  # not collected: the engine assumes defaults and says so
    assert c.envoy_config_dump  # the dump still came through exec
