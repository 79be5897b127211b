"""Settings from a whole Pod object: istio-init's arguments, or what the istio-cni plugin reads."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from meshviz.engine.istio import CaptureSettings, settings_from_pod

from .golden_cases import CNI_BASE, CNI_PLUGIN_CASES

INIT_ARGS = [
    "istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "",
    "-b", "*", "-d", "15090,15021,15020", "--log_output_level=default:info",
]  # fmt: skip


def _proxy(**security: Any) -> dict[str, Any]:
    return {
        "name": "istio-proxy",
        "image": "docker.io/istio/proxyv2:1.26.1",
        "args": ["proxy", "sidecar", "--domain", "$(POD_NAMESPACE).svc.cluster.local"],
        "env": [{"name": "ISTIO_META_INTERCEPTION_MODE", "value": "REDIRECT"}],
        "securityContext": {"runAsUser": 1337, "runAsGroup": 1337, **security},
    }


def injected_pod() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "app", "annotations": {"sidecar.istio.io/status": '{"initContainers":["istio-init"]}'}},
        "spec": {
            "initContainers": [
                {
                    "name": "istio-init",
                    "image": "docker.io/istio/proxyv2:1.26.1",
                    "args": list(INIT_ARGS),
                    "securityContext": {
                        "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
                        "runAsUser": 0,
                    },
                }
            ],
            "containers": [{"name": "app", "image": "app"}, _proxy()],
        },
        "status": {"podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}]},
    }


def cni_pod(
    annotations: dict[str, str] | None = None, env: dict[str, str] | None = None, **security: Any
) -> dict[str, Any]:
    proxy = _proxy(**security)
    proxy["env"] = [{"name": k, "value": v} for k, v in (env or {}).items()]
    return {
        "metadata": {"annotations": {"sidecar.istio.io/status": "{}", **(annotations or {})}},
        "spec": {
            "initContainers": [
                {"name": "istio-validation", "args": ["istio-iptables", "--run-validation", "--skip-rule-apply"]}
            ],
            "containers": [{"name": "app"}, proxy],
        },
        "status": {"podIPs": [{"ip": "10.0.0.5"}]},
    }


def test_an_injected_pod_is_read_from_istio_init() -> None:
    r = settings_from_pod(injected_pod())
    assert r.ok and r.applies and r.flavour == "capture"
    assert r.settings == CaptureSettings.istio_init_defaults()
    assert "istio-init" in r.notes[0]
    assert not any("NET_ADMIN" in n or "loop" in n for n in r.notes)


def test_istio_123_images_use_the_legacy_layout() -> None:
    pod = injected_pod()
    pod["spec"]["initContainers"][0]["image"] = "gcr.io/istio-release/proxyv2:1.23.2-distroless"
    r = settings_from_pod(pod)
    assert r.flavour == "legacy-1.23"
    assert r.generate().commands


def test_ipv6_pod_and_dns_servers_from_dns_config() -> None:
    pod = injected_pod()
    pod["spec"]["initContainers"][0]["env"] = [{"name": "ISTIO_META_DNS_CAPTURE", "value": "true"}]
    pod["spec"]["dnsPolicy"] = "None"
    pod["spec"]["dnsConfig"] = {"nameservers": ["fd00::10"]}
    pod["status"]["podIPs"] = [{"ip": "fd00::5"}]
    r = settings_from_pod(pod)
    assert r.settings.enable_ipv6 and r.settings.redirect_dns
    assert r.settings.dns_servers_v6 == ("fd00::10",)
    assert settings_from_pod(pod, dns_servers=["10.96.0.10"]).settings.dns_servers_v4 == ("10.96.0.10",)


def test_tproxy_injection_runs_envoy_as_root_exempted_by_its_group() -> None:
    pod = injected_pod()
    pod["spec"]["initContainers"][0]["args"][8] = "TPROXY"
    pod["spec"]["containers"][1] = _proxy(runAsUser=0, capabilities={"add": ["NET_ADMIN"]})
    r = settings_from_pod(pod)
    assert r.settings.tproxy
    assert any("only the --gid-owner rules" in n for n in r.notes)
    assert not any("IP_TRANSPARENT" in n for n in r.notes)
    pod["spec"]["containers"][1] = _proxy(runAsUser=0)
    assert any("IP_TRANSPARENT" in n for n in settings_from_pod(pod).notes)


def test_a_proxy_the_rules_do_not_exempt_loops() -> None:
    pod = injected_pod()
    pod["spec"]["containers"][1] = _proxy(runAsUser=1000, runAsGroup=1000)
    assert any("redirect loop" in n for n in settings_from_pod(pod).notes)


def test_istio_init_without_net_admin_cannot_apply() -> None:
    pod = injected_pod()
    pod["spec"]["initContainers"][0]["securityContext"] = {}
    assert any("no NET_ADMIN" in n for n in settings_from_pod(pod).notes)


def test_bad_init_arguments_are_errors() -> None:
    pod = injected_pod()
    pod["spec"]["initContainers"][0]["args"][2] = "oops"
    r = settings_from_pod(pod)
    assert [e.name for e in r.errors] == ["-p (--envoy-port)"]


@pytest.mark.parametrize("name", sorted(CNI_PLUGIN_CASES))
def test_cni_plugin_pods_of_the_goldens(name: str) -> None:
    settings, spec = CNI_PLUGIN_CASES[name]
    security = {}
    if "run_as_user" in spec:
        security = {"runAsUser": spec["run_as_user"], "runAsGroup": spec["run_as_group"]}
    pod = cni_pod(spec.get("annotations"), spec.get("env"), **security)
    if "TPROXY" in spec.get("annotations", {}).values():
        pod["spec"]["containers"][1]["securityContext"]["capabilities"] = {"add": ["NET_ADMIN"]}
    r = settings_from_pod(pod)
    assert r.ok and r.applies, r.errors
    assert r.flavour == "cni-plugin"
    assert r.settings == CaptureSettings.from_values(**{**CNI_BASE, **settings})


def test_cni_plugin_uses_1337_for_a_root_proxy_and_reads_native_sidecars() -> None:
    pod = cni_pod(runAsUser=0)
    proxy = pod["spec"]["containers"].pop()
    proxy["restartPolicy"] = "Always"
    pod["spec"]["initContainers"].append(proxy)
    r = settings_from_pod(pod)
    assert r.ok and r.settings.proxy_uids == ("1337",)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda p: p["metadata"]["annotations"].__setitem__("sidecar.istio.io/inject", "false"), "skips the pod"),
        (lambda p: p["spec"]["containers"][1].__setitem__("args", ["proxy", "router"]), "not a sidecar"),
        (
            lambda p: p["spec"]["containers"][1]["env"].append({"name": "DISABLE_ENVOY", "value": "true"}),
            "DISABLE_ENVOY",
        ),
    ],
)
def test_pods_the_cni_plugin_skips(change: Any, reason: str) -> None:
    pod = copy.deepcopy(cni_pod())
    change(pod)
    r = settings_from_pod(pod)
    assert not r.applies
    assert any(reason in n for n in r.notes)


def test_pods_without_a_sidecar_capture() -> None:
    ambient = {
        "metadata": {"labels": {"istio.io/dataplane-mode": "ambient"}},
        "spec": {"containers": [{"name": "app"}]},
    }
    r = settings_from_pod(ambient)
    assert not r.applies and r.errors[0].name == "istio.io/dataplane-mode"
    r = settings_from_pod({"spec": {"containers": [{"name": "app"}]}})
    assert not r.applies and r.errors[0].name == "istio-proxy"
    r = settings_from_pod({"spec": {"containers": [{"name": "app"}, _proxy()]}})
    assert not r.applies and r.errors[0].name == "sidecar.istio.io/status"


def test_result_is_json_friendly() -> None:
    data = settings_from_pod(injected_pod()).to_dict()
    assert data["flavour"] == "capture" and data["settings"]["inbound_ports_include"] == "*"
    assert CaptureSettings.from_dict(data["settings"]) == CaptureSettings.istio_init_defaults()
