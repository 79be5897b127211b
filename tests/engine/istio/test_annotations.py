"""Pod annotations, as the sidecar injector (istio-init's arguments) and the istio-cni plugin read them."""

from __future__ import annotations

import pytest

from meshviz.engine.istio import CaptureSettings, settings_from_annotations

from .golden_cases import CNI_BASE, CNI_PLUGIN_CASES


def test_no_annotations_is_the_default_injection() -> None:
    r = settings_from_annotations({})
    assert r.ok and r.settings == CaptureSettings.istio_init_defaults()


def test_injector_builds_the_inbound_exclusions_like_its_template() -> None:
    # -d is 15090,15021, then the pod's own exclusions, then the status port unless already there or 0.
    r = settings_from_annotations({"traffic.sidecar.istio.io/excludeInboundPorts": "9000,9001"})
    assert r.settings.inbound_ports_exclude == (15090, 15021, 9000, 9001, 15020)
    r = settings_from_annotations({"traffic.sidecar.istio.io/excludeInboundPorts": "15020,9000"})
    assert r.settings.inbound_ports_exclude == (15090, 15021, 15020, 9000)
    r = settings_from_annotations({"status.sidecar.istio.io/port": "0"})
    assert r.settings.inbound_ports_exclude == (15090, 15021)
    r = settings_from_annotations({"status.sidecar.istio.io/port": "16020"})
    assert r.settings.inbound_ports_exclude == (15090, 15021, 16020)


def test_every_traffic_annotation() -> None:
    r = settings_from_annotations(
        {
            "sidecar.istio.io/interceptionMode": "TPROXY",
            "traffic.sidecar.istio.io/includeInboundPorts": "8080",
            "traffic.sidecar.istio.io/includeOutboundIPRanges": "10.0.0.0/8,fd00::/8",
            "traffic.sidecar.istio.io/excludeOutboundIPRanges": "10.1.0.0/16",
            "traffic.sidecar.istio.io/includeOutboundPorts": "5432",
            "traffic.sidecar.istio.io/excludeOutboundPorts": "3306",
            "traffic.sidecar.istio.io/excludeInterfaces": "net1",
            "traffic.sidecar.istio.io/kubevirtInterfaces": "eth1",
        }
    )
    s = r.settings
    assert r.ok, r.errors
    assert s.tproxy and s.inbound_ports_include == (8080,)
    assert [c.with_prefixlen for c in s.outbound_ip_ranges_include] == ["10.0.0.0/8", "fd00::/8"]
    assert [c.with_prefixlen for c in s.outbound_ip_ranges_exclude] == ["10.1.0.0/16"]
    assert s.outbound_ports_include == (5432,) and s.outbound_ports_exclude == (3306,)
    assert s.exclude_interfaces == ("net1",) and s.reroute_virtual_interfaces == ("eth1",)
    assert any("deprecated" in n for n in r.notes)


def test_reroute_virtual_interfaces_wins_over_the_deprecated_kubevirt_annotation() -> None:
    r = settings_from_annotations(
        {"istio.io/reroute-virtual-interfaces": "eth2", "traffic.sidecar.istio.io/kubevirtInterfaces": "eth1"}
    )
    assert r.settings.reroute_virtual_interfaces == ("eth2",)


def test_interception_mode_none_means_no_capture() -> None:
    r = settings_from_annotations({"sidecar.istio.io/interceptionMode": "NONE"})
    assert not r.applies and r.ok


@pytest.mark.parametrize(
    ("annotation", "value"),
    [
        ("sidecar.istio.io/interceptionMode", "BOGUS"),
        ("traffic.sidecar.istio.io/includeOutboundIPRanges", "10.0.0.1"),  # no prefix length: ParsePrefix refuses
        ("traffic.sidecar.istio.io/excludeOutboundIPRanges", "*"),
        ("traffic.sidecar.istio.io/includeInboundPorts", "http"),
        ("traffic.sidecar.istio.io/excludeOutboundPorts", "99999"),
        ("traffic.sidecar.istio.io/excludeInboundPorts", "x"),
    ],
)
@pytest.mark.parametrize("flavour", ["capture", "cni-plugin"])
def test_malformed_annotations_are_errors_naming_the_annotation(annotation: str, value: str, flavour: str) -> None:
    r = settings_from_annotations({annotation: value}, flavour=flavour)  # type: ignore[arg-type]
    assert not r.ok
    (issue,) = r.errors
    assert (issue.name, issue.value, issue.source) == (annotation, value, "annotations")
    if flavour == "cni-plugin":
        assert "sandbox is not created" in issue.message


def test_names_istio_does_not_read_are_flagged_not_applied() -> None:
    r = settings_from_annotations({"sidecar.istio.io/statusPort": "9999"})
    assert r.settings.inbound_ports_exclude == (15090, 15021, 15020)
    assert any("not an Istio annotation" in n for n in r.notes)


@pytest.mark.parametrize("name", sorted(CNI_PLUGIN_CASES))
def test_cni_plugin_reading_of_each_golden_pod(name: str) -> None:
    settings, pod = CNI_PLUGIN_CASES[name]
    base = CaptureSettings.cni_plugin_defaults()
    if "run_as_user" in pod:
        base = CaptureSettings.from_values(base, proxy_uids=pod["run_as_user"], proxy_gids=pod["run_as_group"])
    r = settings_from_annotations(pod.get("annotations", {}), base, flavour="cni-plugin", proxy_env=pod.get("env"))
    assert r.ok, r.errors
    assert r.flavour == "cni-plugin"
    assert r.settings == CaptureSettings.from_values(**{**CNI_BASE, **settings})


def test_cni_plugin_ignores_the_status_port_annotation() -> None:
    r = settings_from_annotations({"status.sidecar.istio.io/port": "16020"}, flavour="cni-plugin")
    assert r.settings.inbound_ports_exclude == (15020,)
    assert any("does not change the CNI plugin" in n for n in r.notes)


def test_proxy_environment() -> None:
    env = {"ISTIO_META_DNS_CAPTURE": "true", "INVALID_DROP": "1", "ISTIO_DUAL_STACK": "true"}
    injected = settings_from_annotations({}, proxy_env=env).settings
    assert injected.redirect_dns and not injected.capture_all_dns and injected.drop_invalid and injected.dual_stack
    cni = settings_from_annotations({}, flavour="cni-plugin", proxy_env=env).settings
    assert cni.redirect_dns and cni.capture_all_dns
    r = settings_from_annotations({}, proxy_env={"INVALID_DROP": "yes please"})
    assert r.ok and not r.settings.drop_invalid and any("ignores it" in n for n in r.notes)
