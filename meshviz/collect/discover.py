"""Browsing a cluster: namespaces, then the pods with an Istio sidecar and what kind of sidecar it is.

All functions work on the pod JSON exactly as the API server sends it (camelCase keys), which is also
what the engine's `settings_from_pod` reads.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final

from kubernetes import client as k8s

from meshviz.collect.kube import Retry, default_timeout, get_json

__all__ = [
    "PROXY_CONTAINER",
    "PodSummary",
    "has_sidecar",
    "interception_mode",
    "istio_version",
    "list_namespaces",
    "list_pods",
    "proxy_container",
    "summarize",
]

PROXY_CONTAINER: Final = "istio-proxy"
ANN_STATUS: Final = "sidecar.istio.io/status"
ANN_MODE: Final = "sidecar.istio.io/interceptionMode"
_MODES: Final = ("REDIRECT", "TPROXY")
_MODE_FLAG = re.compile(r"^(?:-m|--istio-inbound-interception-mode)(?:=(.*))?$")


@dataclass(frozen=True)
class PodSummary:
    """One pod as the browse page lists it."""

    name: str
    namespace: str
    pod_ip: str
    node: str
    phase: str
    ready: bool
    has_sidecar: bool
    interception_mode: str  # "REDIRECT", "TPROXY", or "" when nothing says
    istio_version: str  # the istio-proxy image tag, "" when unknown

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _containers(pod: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    spec = pod.get("spec") or {}
    return [c for c in spec.get(key) or [] if isinstance(c, Mapping)]


def proxy_container(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The istio-proxy container (a regular container, or a native sidecar init container)."""
    for key in ("containers", "initContainers"):
        for c in _containers(pod, key):
            if c.get("name") == PROXY_CONTAINER:
                return c
    return None


def has_sidecar(pod: Mapping[str, Any]) -> bool:
    """An injected Istio sidecar: an istio-proxy container, with the injector's status annotation or the
    proxyv2 image (a hand-named istio-proxy container alone is not enough)."""
    proxy = proxy_container(pod)
    if proxy is None:
        return False
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    image = str(proxy.get("image") or "")
    return ANN_STATUS in annotations or "proxyv2" in image


def _init_args(pod: Mapping[str, Any]) -> list[str] | None:
    for c in _containers(pod, "initContainers"):
        line = [str(t) for t in (c.get("command") or [])] + [str(t) for t in (c.get("args") or [])]
        if c.get("name") == "istio-init" or any(t.rsplit("/", 1)[-1] == "istio-iptables" for t in line):
            if "--skip-rule-apply" in line:
                continue
            return line
    return None


def interception_mode(pod: Mapping[str, Any]) -> str:
    """From the `sidecar.istio.io/interceptionMode` annotation, else istio-init's `-m`; "" when neither says.

    istio-init without `-m` means REDIRECT (istio-iptables' default).
    """
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    value = str(annotations.get(ANN_MODE, "")).strip().upper()
    if value in _MODES:
        return value
    args = _init_args(pod)
    if args is None:
        return ""
    tokens: list[str] = []
    for t in args:
        # A single shell string (`sh -c "istio-iptables ..."`) is split like a shell would.
        tokens.extend(shlex.split(t) if " " in t else [t])
    for i, t in enumerate(tokens):
        m = _MODE_FLAG.match(t)
        if m is not None:
            found = m.group(1) if m.group(1) is not None else (tokens[i + 1] if i + 1 < len(tokens) else "")
            return "TPROXY" if found.strip().upper() == "TPROXY" else "REDIRECT"
        if t.startswith("-m") and not t.startswith("--") and len(t) > 2:  # -mTPROXY
            return "TPROXY" if t[2:].lstrip("=").upper() == "TPROXY" else "REDIRECT"
    return "REDIRECT"


def istio_version(pod: Mapping[str, Any]) -> str:
    """The istio-proxy image tag (`docker.io/istio/proxyv2:1.18.2` -> "1.18.2"); "" for a digest-only image."""
    proxy = proxy_container(pod)
    if proxy is None:
        return ""
    image = str(proxy.get("image") or "").split("@", 1)[0]
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else ""


def _ready(pod: Mapping[str, Any]) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def summarize(pod: Mapping[str, Any]) -> PodSummary:
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    spec = pod.get("spec") or {}
    sidecar = has_sidecar(pod)
    return PodSummary(
        name=str(meta.get("name", "")),
        namespace=str(meta.get("namespace", "")),
        pod_ip=str(status.get("podIP") or ""),
        node=str(spec.get("nodeName") or ""),
        phase=str(status.get("phase") or ""),
        ready=_ready(pod),
        has_sidecar=sidecar,
        interception_mode=interception_mode(pod) if sidecar else "",
        istio_version=istio_version(pod) if sidecar else "",
    )


def list_namespaces(api: k8s.ApiClient) -> list[str]:
    """Namespace names, sorted.  Raises CollectError (forbidden, unreachable, ...)."""
    v1 = k8s.CoreV1Api(api)
    timeout = default_timeout(api)
    data = Retry().call(lambda: get_json(v1.list_namespace, timeout=timeout), "namespaces", "list namespaces")
    return sorted(str((item.get("metadata") or {}).get("name", "")) for item in data.get("items") or [])


def list_pods(api: k8s.ApiClient, namespace: str, *, sidecar_only: bool = True) -> list[PodSummary]:
    """The namespace's pods (only those with an Istio sidecar unless `sidecar_only=False`), sorted by name."""
    v1 = k8s.CoreV1Api(api)
    timeout = default_timeout(api)
    data = Retry().call(
        lambda: get_json(v1.list_namespaced_pod, namespace, timeout=timeout),
        "pods",
        f"list pods in namespace {namespace!r}",
    )
    pods = [summarize(item) for item in data.get("items") or [] if isinstance(item, Mapping)]
    if sidecar_only:
        pods = [p for p in pods if p.has_sidecar]
    return sorted(pods, key=lambda p: p.name)
