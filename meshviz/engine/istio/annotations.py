"""The pod annotations and labels that change capture (sidecar.istio.io/*, traffic.sidecar.istio.io/*), read as the
injector and the CNI plugin read them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from meshviz.engine.istio.init_args import _is_cidr
from meshviz.engine.istio.pod_settings import SRC_ANNOTATIONS, SRC_PROXY, PodSettings, _Collector
from meshviz.engine.istio.settings import (
    WILDCARD,
    CaptureSettings,
    SettingsError,
    parse_bool,
    parse_port,
    split_list,
)

# --------------------------------------------------------------------------
# Annotations
# --------------------------------------------------------------------------

ANN_MODE = "sidecar.istio.io/interceptionMode"
ANN_INCLUDE_IPS = "traffic.sidecar.istio.io/includeOutboundIPRanges"
ANN_EXCLUDE_IPS = "traffic.sidecar.istio.io/excludeOutboundIPRanges"
ANN_INCLUDE_INBOUND = "traffic.sidecar.istio.io/includeInboundPorts"
ANN_EXCLUDE_INBOUND = "traffic.sidecar.istio.io/excludeInboundPorts"
ANN_INCLUDE_OUTBOUND = "traffic.sidecar.istio.io/includeOutboundPorts"
ANN_EXCLUDE_OUTBOUND = "traffic.sidecar.istio.io/excludeOutboundPorts"
ANN_KUBEVIRT = "traffic.sidecar.istio.io/kubevirtInterfaces"
ANN_REROUTE = "istio.io/reroute-virtual-interfaces"
ANN_EXCLUDE_IFACES = "traffic.sidecar.istio.io/excludeInterfaces"
ANN_STATUS_PORT = "status.sidecar.istio.io/port"
ANN_STATUS = "sidecar.istio.io/status"
ANN_INJECT = "sidecar.istio.io/inject"
ANN_PROXY_CONFIG = "proxy.istio.io/config"
LABEL_INJECT = "sidecar.istio.io/inject"
LABEL_DATAPLANE = "istio.io/dataplane-mode"

#: Annotations that change the capture, and the setting each one feeds.
ANNOTATIONS: dict[str, str] = {
    ANN_MODE: "interception_mode",
    ANN_INCLUDE_IPS: "outbound_ip_ranges_include",
    ANN_EXCLUDE_IPS: "outbound_ip_ranges_exclude",
    ANN_INCLUDE_INBOUND: "inbound_ports_include",
    ANN_EXCLUDE_INBOUND: "inbound_ports_exclude",
    ANN_INCLUDE_OUTBOUND: "outbound_ports_include",
    ANN_EXCLUDE_OUTBOUND: "outbound_ports_exclude",
    ANN_REROUTE: "reroute_virtual_interfaces",
    ANN_KUBEVIRT: "reroute_virtual_interfaces",
    ANN_EXCLUDE_IFACES: "exclude_interfaces",
    ANN_STATUS_PORT: "inbound_ports_exclude",
}

#: The ports the injection template always puts in front of `-d` (Envoy's stats and health ports).
INJECTED_EXCLUDED_PORTS = (15090, 15021)
DEFAULT_STATUS_PORT = 15020

#: Names people use that Istio does not read.
_NOT_ISTIO = {"sidecar.istio.io/statusPort": ANN_STATUS_PORT}


def settings_from_annotations(
    annotations: Mapping[str, str],
    base: CaptureSettings | None = None,
    *,
    flavour: Literal["capture", "cni-plugin"] = "capture",
    proxy_env: Mapping[str, str] | None = None,
) -> PodSettings:
    """Settings from a pod's annotations over `base` (the mesh-wide defaults).

    flavour "capture": what the sidecar injector writes into istio-init's arguments (`-d` becomes
    15090,15021, the pod's exclusions, then the status port); base defaults to `istio_init_defaults()`.
    flavour "cni-plugin": what the istio-cni plugin reads (invalid values fail the pod's sandbox; the
    status ports are added by the generator); base defaults to `cni_plugin_defaults()`.
    `proxy_env` is the istio-proxy container's environment (ISTIO_META_DNS_CAPTURE, INVALID_DROP,
    ISTIO_DUAL_STACK).
    """
    cni = flavour == "cni-plugin"
    if base is None:
        base = CaptureSettings.cni_plugin_defaults() if cni else CaptureSettings.istio_init_defaults()
    c = _Collector(base)
    consequence = (
        "the istio-cni plugin refuses the pod and its sandbox is not created"
        if cni
        else "the injector rejects it (or istio-init fails with it)"
    )
    for wrong, right in _NOT_ISTIO.items():
        if wrong in annotations:
            c.notes.append(f"{wrong} is not an Istio annotation and has no effect (Istio reads {right})")
    if ANN_PROXY_CONFIG in annotations:
        c.notes.append(
            f"{ANN_PROXY_CONFIG} is not interpreted here: if it sets interceptionMode or proxyMetadata "
            "(ISTIO_META_DNS_CAPTURE, INVALID_DROP), give them as annotations or proxy environment"
        )

    mode = annotations.get(ANN_MODE)
    if mode is not None:
        if mode.strip().upper() == "NONE" and not cni:
            c.applies = False
            c.notes.append(f"{ANN_MODE}=NONE: the injector adds no istio-init, nothing is captured")
        elif mode.strip().upper() not in ("REDIRECT", "TPROXY"):
            c.error(ANN_MODE, mode, f"interception mode must be REDIRECT or TPROXY; {consequence}", SRC_ANNOTATIONS)
        else:
            c.set("interception_mode", mode.strip().upper(), ANN_MODE, SRC_ANNOTATIONS)

    for ann in (
        ANN_INCLUDE_IPS,
        ANN_EXCLUDE_IPS,
        ANN_INCLUDE_INBOUND,
        ANN_INCLUDE_OUTBOUND,
        ANN_EXCLUDE_OUTBOUND,
        ANN_EXCLUDE_IFACES,
    ):
        if ann not in annotations:
            continue
        value = annotations[ann]
        if ann in (ANN_INCLUDE_IPS, ANN_EXCLUDE_IPS) and value.strip() != WILDCARD:
            bad = [item for item in split_list(value) if not _is_cidr(item)]
            if bad:
                c.error(ann, value, f"{bad[0]!r} is not a CIDR (address/length); {consequence}", SRC_ANNOTATIONS)
                continue
        c.set(ANNOTATIONS[ann], value, ann, SRC_ANNOTATIONS, consequence)

    reroute = ANN_REROUTE if ANN_REROUTE in annotations else ANN_KUBEVIRT if ANN_KUBEVIRT in annotations else None
    if reroute is not None:
        c.set("reroute_virtual_interfaces", annotations[reroute], reroute, SRC_ANNOTATIONS, consequence)
        if reroute == ANN_KUBEVIRT:
            c.notes.append(f"{ANN_KUBEVIRT} is deprecated in favour of {ANN_REROUTE}")

    if cni:
        if ANN_EXCLUDE_INBOUND in annotations:
            c.set(
                "inbound_ports_exclude",
                annotations[ANN_EXCLUDE_INBOUND],
                ANN_EXCLUDE_INBOUND,
                SRC_ANNOTATIONS,
                consequence,
            )
        if ANN_STATUS_PORT in annotations:
            c.notes.append(
                f"{ANN_STATUS_PORT} does not change the CNI plugin's rules: it always excludes 15020,15021,15090"
            )
    else:
        _injected_inbound_exclusions(c, annotations, base)

    _proxy_env(c, proxy_env or {}, cni)
    return c.result(flavour)


def _injected_inbound_exclusions(c: _Collector, annotations: Mapping[str, str], base: CaptureSettings) -> None:
    """The injector's `-d`: 15090,15021, then excludeInboundPort(statusPort, the pod's exclusions)."""
    standard = (*INJECTED_EXCLUDED_PORTS, DEFAULT_STATUS_PORT)
    if ANN_EXCLUDE_INBOUND in annotations:
        user_text = annotations[ANN_EXCLUDE_INBOUND]
        try:
            user = [str(p) for p in CaptureSettings.from_values(inbound_ports_exclude=user_text).inbound_ports_exclude]
        except SettingsError as e:
            c.error(ANN_EXCLUDE_INBOUND, user_text, e.issue.message + "; the injector rejects it", SRC_ANNOTATIONS)
            user = []
    else:
        user = [str(p) for p in base.inbound_ports_exclude if p not in standard]
    status = annotations.get(ANN_STATUS_PORT, str(DEFAULT_STATUS_PORT)).strip()
    if status and status != "0":
        try:
            parse_port(ANN_STATUS_PORT, status)
        except SettingsError as e:
            c.error(ANN_STATUS_PORT, status, e.issue.message + "; the injector rejects it", SRC_ANNOTATIONS)
            status = ""
    ports = [str(p) for p in INJECTED_EXCLUDED_PORTS] + user
    if status and status != "0" and status not in user:
        ports.append(status)
    c.set("inbound_ports_exclude", ",".join(ports), ANN_EXCLUDE_INBOUND, SRC_ANNOTATIONS)


def _proxy_env(c: _Collector, env: Mapping[str, str], cni: bool) -> None:
    """The proxy environment both the injector (via istio-init's env) and the CNI plugin pass on."""
    for name, field in (
        ("ISTIO_META_DNS_CAPTURE", "redirect_dns"),
        ("INVALID_DROP", "drop_invalid"),
        ("ISTIO_DUAL_STACK", "dual_stack"),
    ):
        if name not in env:
            continue
        try:
            value = parse_bool(name, env[name])
        except SettingsError:
            # Both istio-iptables and the CNI plugin log a warning and keep the default.
            c.notes.append(f"{name}={env[name]!r} is not a boolean; Istio ignores it")
            continue
        c.set(field, value, name, SRC_PROXY)
        if field == "redirect_dns" and cni:
            c.set("capture_all_dns", value, name, SRC_PROXY)
            if value:
                c.notes.append(
                    "DNS capture via the CNI plugin: every port-53 packet goes to istio-agent (capture-all-dns)"
                )
