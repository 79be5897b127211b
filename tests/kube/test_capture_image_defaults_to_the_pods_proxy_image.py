"""By default the capture container runs the pod's own istio-proxy image (proxyv2: already on the node, with
iptables, ip and pilot-agent), as root with NET_ADMIN/NET_RAW; the image is recorded in the notes and steps.
A distroless proxy image (no shell) is replaced by DEFAULT_DEBUG_IMAGE, and the notes say why."""

from __future__ import annotations

from kubernetes import client as k8s

from meshviz.collect.capture import DEFAULT_DEBUG_IMAGE, capture_image
from meshviz.collect.collect import collect_pod
from tests.kube.fake_apiserver import PROXY_IMAGE, FakeApiServer
from tests.kube.helpers import POD, REDIRECT_NS


def test_capture_image_defaults_to_the_pods_proxy_image(fake_apiserver: FakeApiServer, api: k8s.ApiClient) -> None:
    c = collect_pod(api, REDIRECT_NS, POD)

    (run,) = fake_apiserver.captures.values()
    spec = run.container
    assert spec["image"] == PROXY_IMAGE == "docker.io/istio/proxyv2:1.18.2"
    assert spec["imagePullPolicy"] == "IfNotPresent"
    sc = spec["securityContext"]
    assert (sc["runAsUser"], sc["runAsNonRoot"]) == (0, False)  # proxyv2 would otherwise run as 1337
    assert sc["capabilities"] == {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]}

    assert any(PROXY_IMAGE in n and "the pod's own istio-proxy image" in n and spec["name"] in n for n in c.notes)
    netfilter = next(s for s in c.steps if s["step"] == "netfilter")
    assert netfilter["state"] == "done" and PROXY_IMAGE in netfilter["detail"]

    # proxyv2 has no sysctl binary: the script read the pod's /proc/sys instead
    assert "command -v sysctl" in spec["command"][2] and "sysctl" not in fake_apiserver.scenario.tools_for(PROXY_IMAGE)
    assert "net.ipv4.conf.lo.rp_filter = 0" in c.sysctl and "net.ipv4.tcp_fwmark_accept = 0" in c.sysctl
    assert "somaxconn" not in c.sysctl


def test_distroless_proxy_image_is_replaced_by_the_default_debug_image(
    fake_apiserver: FakeApiServer, api: k8s.ApiClient
) -> None:
    pod = fake_apiserver.scenario.pod(REDIRECT_NS, POD)
    proxy = next(x for x in pod["spec"]["containers"] if x["name"] == "istio-proxy")
    proxy["image"] = "docker.io/istio/proxyv2:1.18.2-distroless"
    image, why = capture_image(pod)
    assert image == DEFAULT_DEBUG_IMAGE and "distroless" in why

    c = collect_pod(api, REDIRECT_NS, POD)
    (run,) = fake_apiserver.captures.values()
    assert run.container["image"] == DEFAULT_DEBUG_IMAGE
    assert any(DEFAULT_DEBUG_IMAGE in n and "no shell" in n for n in c.notes)
    assert not c.reconstructed and c.sysctl
