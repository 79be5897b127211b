"""The capture settings a pod was programmed with, read from what the pod shows.

* `settings_from_init_args(args, env)` - the `istio-init` container's command line
  (`istio-iptables -p 15001 -z 15006 -u 1337 -m REDIRECT -i '*' -x "" -b '*' -d 15090,15021,15020`),
  long and short flags as istio-iptables defines them, plus the environment variables it also reads;
* `settings_from_annotations(annotations, base, flavour=...)` - the pod's `sidecar.istio.io/*` and
  `traffic.sidecar.istio.io/*` annotations, the way the injector turns them into istio-init arguments
  (flavour "capture") or the way the istio-cni plugin reads them (flavour "cni-plugin");
* `settings_from_pod(pod_json)` - a Kubernetes Pod object: finds istio-init (or, with istio-cni, the
  sidecar status annotation), the istio-proxy container's uid/gid, capabilities and environment, the
  pod's addresses (IPv6) and DNS config.

Each returns `PodSettings`: the settings, the flavour that programs them, notes on what was inferred or
assumed, and errors as data (`SettingIssue`: the flag or annotation, the value, what is wrong - and what
Istio would do about it).  Nothing raises on bad input.

Where Istio's behaviour was read: `tools/istio-iptables/pkg/cmd/root.go` (flags, `flag.BindEnv`,
additional env names), `tools/istio-iptables/pkg/constants` (flag names, env-only variables),
`pkg/kube/inject` (the injection template's istio-init arguments, `excludeInboundPort`),
`cni/pkg/plugin/sidecar_redirect.go`, `kubernetes.go` and `plugin.go` (annotation registry, defaults,
the status ports, the proxy's uid/gid and environment, when the plugin skips a pod).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from meshviz.engine.istio.annotations import (
    ANN_INJECT,
    ANN_STATUS,
    ANNOTATIONS,
    LABEL_DATAPLANE,
    LABEL_INJECT,
    settings_from_annotations,
)
from meshviz.engine.istio.init_args import _is_program, _pod_environment, settings_from_init_args
from meshviz.engine.istio.pod_settings import SRC_POD, SRC_PROXY, PodSettings, _Collector
from meshviz.engine.istio.settings import (
    CaptureSettings,
    Flavour,
    SettingsError,
    parse_bool,
)

# --------------------------------------------------------------------------
# A whole pod
# --------------------------------------------------------------------------

_VERSION_TAG = re.compile(r":(?:release-)?v?(\d+)\.(\d+)")


def _containers(spec: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = spec.get(key) or []
    return [c for c in value if isinstance(c, Mapping)]


def _env_of(container: Mapping[str, Any], c: _Collector, who: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in container.get("env") or []:
        if not isinstance(item, Mapping) or "name" not in item:
            continue
        if "value" in item:
            env[str(item["name"])] = str(item["value"])
        elif "valueFrom" in item and str(item["name"]) in (
            "ISTIO_META_DNS_CAPTURE",
            "INVALID_DROP",
            "ISTIO_DUAL_STACK",
        ):
            c.notes.append(f"{who}: {item['name']} comes from valueFrom and cannot be read from the pod object")
    return env


def _command_line(container: Mapping[str, Any]) -> list[str]:
    return [str(t) for t in (container.get("command") or [])] + [str(t) for t in (container.get("args") or [])]


def _is_capture_init(container: Mapping[str, Any]) -> bool:
    line = _command_line(container)
    return any(_is_program(t) or t == "istio-iptables" for t in line) and "--skip-rule-apply" not in line


def _version(image: str) -> tuple[int, int] | None:
    m = _VERSION_TAG.search(image.rsplit("/", 1)[-1])
    return (int(m.group(1)), int(m.group(2))) if m else None


def _legacy_by_image(c: _Collector, image: str) -> bool:
    version = _version(image)
    if version is not None and version < (1, 24):
        c.notes.append(
            f"image {image}: Istio {version[0]}.{version[1]} ran one iptables command per rule; using the legacy-1.23 "
            "layout (releases before 1.23 may differ in details)"
        )
        return True
    return False


def settings_from_pod(pod: Mapping[str, Any], *, dns_servers: Iterable[str] | None = None) -> PodSettings:
    """Settings from a Kubernetes Pod object (as JSON): istio-init's arguments, or the istio-cni plugin's view.

    `dns_servers` stands for the pod's /etc/resolv.conf nameservers (used only with DNS capture; by default
    `spec.dnsConfig.nameservers` when `dnsPolicy` is None).
    """
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    annotations = {str(k): str(v) for k, v in (meta.get("annotations") or {}).items()}
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    inits = _containers(spec, "initContainers")
    mains = _containers(spec, "containers")
    proxy = next((x for x in (*inits, *mains) if x.get("name") == "istio-proxy"), None)
    istio_init = next((x for x in inits if x.get("name") == "istio-init"), None)
    if istio_init is None:
        istio_init = next((x for x in inits if x.get("name") != "istio-validation" and _is_capture_init(x)), None)

    c = _Collector(CaptureSettings())
    pod_ips = [str(p.get("ip")) for p in status.get("podIPs") or [] if isinstance(p, Mapping) and p.get("ip")]
    if not pod_ips and status.get("podIP"):
        pod_ips = [str(status["podIP"])]
    servers = list(dns_servers) if dns_servers is not None else _resolv_conf_servers(spec, c)

    if proxy is None:
        if labels.get(LABEL_DATAPLANE) == "ambient":
            c.applies = False
            c.error(
                LABEL_DATAPLANE,
                "ambient",
                "an ambient pod: ztunnel's in-pod rules are not what this generator reproduces",
                SRC_POD,
            )
        else:
            c.applies = False
            c.error("istio-proxy", "", "no istio-proxy container: not an Istio sidecar pod", SRC_POD)
        return c.result("capture")

    proxy_env = _env_of(proxy, c, "istio-proxy")
    image = str(proxy.get("image") or "")

    if istio_init is not None:
        init_env = _env_of(istio_init, c, "istio-init")
        r = settings_from_init_args(_command_line(istio_init), init_env, dns_servers=servers, pod_ips=pod_ips)
        flavour: Flavour = "capture"
        c.settings, c.applies = r.settings, r.applies
        c.notes.extend(r.notes)
        c.errors.extend(r.errors)
        c.notes.insert(0, "read from the istio-init container's arguments (rules programmed by istio-iptables)")
        if _legacy_by_image(c, str(istio_init.get("image") or image)):
            flavour = "legacy-1.23"
        _check_init_privileges(c, istio_init)
        _annotation_drift(c, annotations)
    else:
        if ANN_STATUS not in annotations:
            c.applies = False
            c.error(
                ANN_STATUS,
                "",
                "no istio-init container and no sidecar status annotation: nothing programs the capture",
                SRC_POD,
            )
            return c.result("capture")
        flavour = "cni-plugin"
        r = settings_from_annotations(annotations, flavour="cni-plugin", proxy_env=proxy_env)
        c.settings, c.applies = r.settings, r.applies
        c.notes.append("no istio-init container: the istio-cni plugin programs the capture from the annotations")
        c.notes.extend(r.notes)
        c.errors.extend(r.errors)
        _cni_skips(c, labels, annotations, proxy, proxy_env)
        _cni_proxy_ids(c, proxy)
        if _legacy_by_image(c, image):
            flavour = "legacy-1.23"
        _pod_environment(c, servers, pod_ips, "the istio-cni plugin")

    _check_proxy(c, proxy, spec)
    return c.result(flavour)


def _resolv_conf_servers(spec: Mapping[str, Any], c: _Collector) -> list[str]:
    config = spec.get("dnsConfig") or {}
    servers = [str(s) for s in config.get("nameservers") or []]
    if servers and spec.get("dnsPolicy") == "None":
        c.notes.append("DNS servers taken from spec.dnsConfig.nameservers (dnsPolicy None)")
        return servers
    return []


def _cni_skips(
    c: _Collector,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    proxy: Mapping[str, Any],
    env: Mapping[str, str],
) -> None:
    """The cases where the CNI plugin leaves the pod alone (plugin.go)."""
    try:
        if "DISABLE_ENVOY" in env and parse_bool("DISABLE_ENVOY", env["DISABLE_ENVOY"]):
            c.applies = False
            c.notes.append("DISABLE_ENVOY is set on istio-proxy: the CNI plugin skips the pod")
    except SettingsError:
        pass
    args = [str(a) for a in proxy.get("args") or []]
    if len(args) >= 2 and args[0] == "proxy" and args[1] != "sidecar":
        c.applies = False
        c.notes.append(f"istio-proxy runs as {args[1]!r}, not a sidecar: the CNI plugin skips the pod")
    inject = labels.get(LABEL_INJECT, annotations.get(ANN_INJECT, ""))
    try:
        if inject and not parse_bool(ANN_INJECT, inject):
            c.applies = False
            c.notes.append(f"{ANN_INJECT}={inject}: the CNI plugin skips the pod")
    except SettingsError:
        pass


def _security_context(container: Mapping[str, Any]) -> Mapping[str, Any]:
    sc = container.get("securityContext")
    return sc if isinstance(sc, Mapping) else {}


def _cni_proxy_ids(c: _Collector, proxy: Mapping[str, Any]) -> None:
    """The plugin uses istio-proxy's own runAsUser/runAsGroup (not the pod's), 1337 when unset or 0."""
    sc = _security_context(proxy)
    for key, field in (("runAsUser", "proxy_uids"), ("runAsGroup", "proxy_gids")):
        value = sc.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value != 0:
            c.set(field, str(value), f"istio-proxy securityContext.{key}", SRC_PROXY)
            c.notes.append(
                f"CNI plugin: {field[:-1].replace('_', ' ')} {value} from istio-proxy's securityContext.{key}"
            )
        elif field == "proxy_uids":
            c.settings = replace(c.settings, proxy_uids=("1337",))
        else:
            c.settings = replace(c.settings, proxy_gids=("1337",))


def _check_init_privileges(c: _Collector, init: Mapping[str, Any]) -> None:
    sc = _security_context(init)
    caps = sc.get("capabilities") or {}
    added = {str(x).upper().removeprefix("CAP_") for x in caps.get("add") or []}
    if not sc.get("privileged") and "NET_ADMIN" not in added:
        c.notes.append("istio-init has no NET_ADMIN capability: iptables-restore would fail and the pod never start")


def _annotation_drift(c: _Collector, annotations: Mapping[str, str]) -> None:
    changed = [a for a in ANNOTATIONS if a in annotations]
    if changed:
        c.notes.append(
            "annotations (" + ", ".join(changed) + ") were turned into istio-init's arguments at injection; "
            "the arguments are what ran, so they are used"
        )


def _effective_id(container: Mapping[str, Any], spec: Mapping[str, Any], key: str) -> int | None:
    for sc in (_security_context(container), spec.get("securityContext") or {}):
        value = sc.get(key) if isinstance(sc, Mapping) else None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _check_proxy(c: _Collector, proxy: Mapping[str, Any], spec: Mapping[str, Any]) -> None:
    """Does the proxy's identity match what the rules exempt, and can it do TPROXY?"""
    s = c.settings
    uid = _effective_id(proxy, spec, "runAsUser")
    gid = _effective_id(proxy, spec, "runAsGroup")
    if uid is not None or gid is not None:
        uid_ok = uid is not None and str(uid) in s.proxy_uids
        gid_ok = gid is not None and str(gid) in s.proxy_gids
        who = f"istio-proxy runs as uid {uid if uid is not None else '?'} gid {gid if gid is not None else '?'}"
        if not uid_ok and not gid_ok:
            c.notes.append(
                f"{who}, which the rules do not exempt (uids {','.join(s.proxy_uids)}, gids {','.join(s.proxy_gids)}): "
                "Envoy's own connections would be captured again (a redirect loop)"
            )
        elif not uid_ok:
            c.notes.append(f"{who}: only the --gid-owner rules exempt Envoy's own traffic")
    sc = _security_context(proxy)
    added = {str(x).upper().removeprefix("CAP_") for x in (sc.get("capabilities") or {}).get("add") or []}
    if s.tproxy and not sc.get("privileged") and "NET_ADMIN" not in added:
        c.notes.append(
            "TPROXY mode but istio-proxy has no NET_ADMIN: Envoy cannot set IP_TRANSPARENT on its inbound listener, "
            "so TPROXY'd connections find no socket and are dropped"
        )
