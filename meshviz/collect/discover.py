"""Browsing a cluster: namespaces, then the pods with an Istio sidecar and what kind of sidecar it is.

All functions work on the pod JSON exactly as the API server sends it (camelCase keys), which is also
what the engine's `settings_from_pod` reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from kubernetes import client as k8s

from meshviz.collect.kube import Retry, default_timeout, get_json

# what a pod spec says (sidecar, mode, version) is the engine's: one implementation for every evidence path
from meshviz.engine.api import PROXY_CONTAINER, has_sidecar, istio_version, proxy_container
from meshviz.engine.api import spec_interception_mode as interception_mode

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
