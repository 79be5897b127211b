"""Who a pod is, from its Kubernetes Pod object (a dict, as `kubectl get pod -o json` prints it).

`pod_identity(pod)` is the one place meshviz reads a pod spec for an analysis's metadata: the pod IP(s),
name, namespace, labels, annotations, the sidecar's uid/gid and NET_ADMIN, the application ports, the
interception mode and the Istio version.  Live collection (`meshviz.collect`), evidence bundles
(`meshviz.engine.evidence.bundle`) and `istioctl bug-report` archives (`meshviz.engine.evidence.bugreport`) all use it.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

PROXY_CONTAINER: Final = "istio-proxy"
ANN_STATUS: Final = "sidecar.istio.io/status"
ANN_MODE: Final = "sidecar.istio.io/interceptionMode"
_MODES: Final = ("REDIRECT", "TPROXY")


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


def init_args(pod: Mapping[str, Any]) -> list[str] | None:
    """istio-init's command line (istio-iptables), None when the pod has none (istio-cni, no sidecar)."""
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
    args = init_args(pod)
    if args is None:
        return ""
    tokens: list[str] = []
    for t in args:
        # A single shell string (`sh -c "istio-iptables ..."`) is split like a shell would.
        tokens.extend(shlex.split(t) if " " in t else [t])
    for i, t in enumerate(tokens):
        if t in ("-m", "--istio-inbound-interception-mode") or t.startswith("--istio-inbound-interception-mode="):
            found = t.partition("=")[2] if "=" in t else (tokens[i + 1] if i + 1 < len(tokens) else "")
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


def effective_id(container: Mapping[str, Any], pod: Mapping[str, Any], key: str) -> int | None:
    """`runAsUser` / `runAsGroup` as the kubelet applies it: the container's, else the pod's securityContext."""
    spec = pod.get("spec") or {}
    for sc in (container.get("securityContext") or {}, spec.get("securityContext") or {}):
        value = sc.get(key) if isinstance(sc, Mapping) else None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def app_ports(pod: Mapping[str, Any]) -> list[int]:
    """The TCP container ports of every container but istio-proxy, sorted."""
    ports: set[int] = set()
    for c in _containers(pod, "containers"):
        if c.get("name") == PROXY_CONTAINER:
            continue
        for p in c.get("ports") or []:
            if isinstance(p, Mapping) and str(p.get("protocol", "TCP")).upper() == "TCP":
                port = p.get("containerPort")
                if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536:
                    ports.add(port)
    return sorted(ports)


def pod_ips(pod: Mapping[str, Any]) -> list[str]:
    """`status.podIPs` (every family), else `status.podIP`."""
    status = pod.get("status") or {}
    ips = [str(p.get("ip")) for p in status.get("podIPs") or [] if isinstance(p, Mapping) and p.get("ip")]
    if not ips and status.get("podIP"):
        ips = [str(status["podIP"])]
    return ips


def _net_admin(proxy: Mapping[str, Any]) -> bool | None:
    sc = proxy.get("securityContext")
    if not isinstance(sc, Mapping):
        return None
    caps = sc.get("capabilities") if isinstance(sc.get("capabilities"), Mapping) else {}
    added = [str(c).upper() for c in (caps or {}).get("add") or []]
    return bool(sc.get("privileged")) or "NET_ADMIN" in added


@dataclass(frozen=True)
class PodIdentity:
    """What an analysis needs to know about the pod besides its rules (see `pod_identity`)."""

    name: str = ""
    namespace: str = ""
    pod_ip: str = ""
    pod_ips: tuple[str, ...] = ()
    node: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    has_sidecar: bool = False
    proxy_image: str = ""
    proxy_uid: int | None = None
    proxy_gid: int | None = None
    proxy_net_admin: bool | None = None
    app_ports: tuple[int, ...] = ()
    interception_mode: str = ""
    istio_version: str = ""
    workload: str = ""  # e.g. "deployment/reviews-v1" when the owner chain says so (ReplicaSet hash dropped)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "namespace": self.namespace,
            "pod_ip": self.pod_ip,
            "pod_ips": list(self.pod_ips),
            "node": self.node,
            "labels": dict(self.labels),
            "has_sidecar": self.has_sidecar,
            "proxy_image": self.proxy_image,
            "proxy_uid": self.proxy_uid,
            "proxy_gid": self.proxy_gid,
            "proxy_net_admin": self.proxy_net_admin,
            "app_ports": list(self.app_ports),
            "interception_mode": self.interception_mode,
            "istio_version": self.istio_version,
            "workload": self.workload,
        }


def _workload(meta: Mapping[str, Any]) -> str:
    for ref in meta.get("ownerReferences") or []:
        if not isinstance(ref, Mapping) or not ref.get("controller", True):
            continue
        kind, name = str(ref.get("kind") or ""), str(ref.get("name") or "")
        if kind == "ReplicaSet" and "-" in name:
            hash_ = str((meta.get("labels") or {}).get("pod-template-hash") or "")
            if hash_ and name.endswith("-" + hash_):
                return f"deployment/{name[: -len(hash_) - 1]}"
        if kind and name:
            return f"{kind.lower()}/{name}"
    return ""


def pod_identity(pod: Mapping[str, Any]) -> PodIdentity:
    """The pod's identity for an analysis (everything optional: a missing field stays empty/None)."""
    meta = pod.get("metadata") or {}
    if not isinstance(meta, Mapping):
        meta = {}
    proxy = proxy_container(pod) or {}
    ips = pod_ips(pod)
    sidecar = has_sidecar(pod)
    return PodIdentity(
        name=str(meta.get("name") or ""),
        namespace=str(meta.get("namespace") or ""),
        pod_ip=ips[0] if ips else "",
        pod_ips=tuple(ips),
        node=str((pod.get("spec") or {}).get("nodeName") or ""),
        labels={str(k): str(v) for k, v in (meta.get("labels") or {}).items()},
        annotations={str(k): str(v) for k, v in (meta.get("annotations") or {}).items()},
        has_sidecar=sidecar,
        proxy_image=str(proxy.get("image") or ""),
        proxy_uid=effective_id(proxy, pod, "runAsUser") if proxy else None,
        proxy_gid=effective_id(proxy, pod, "runAsGroup") if proxy else None,
        proxy_net_admin=_net_admin(proxy) if proxy else None,
        app_ports=tuple(app_ports(pod)),
        interception_mode=interception_mode(pod) if sidecar else "",
        istio_version=istio_version(pod) if sidecar else "",
        workload=_workload(meta),
    )


# --------------------------------------------------------------------------
# Who the pod is, from the Envoy config dump's node metadata
# --------------------------------------------------------------------------

#: Istio's own ports on a sidecar (15000-15090): never the application's unless asked for.
ISTIO_PORT_RANGE: Final = range(15000, 15091)
#: Labels Kubernetes adds to every pod of a workload: not for a workload selector.
_NOISY_LABELS: Final = ("pod-template-hash", "controller-revision-hash", "pod-template-generation")


def _json_value(text: str | None) -> Any:
    import json

    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def workload_of_owner(owner: str) -> str:
    """Istio's OWNER (`kubernetes://apis/apps/v1/namespaces/NS/deployments/NAME`) as `deployment/NAME`."""
    parts = [p for p in owner.split("/") if p]
    if len(parts) >= 2:
        kind, name = parts[-2], parts[-1]
        singular = {
            "deployments": "deployment",
            "statefulsets": "statefulset",
            "daemonsets": "daemonset",
            "replicasets": "replicaset",
            "jobs": "job",
            "cronjobs": "cronjob",
            "pods": "pod",
        }.get(kind)
        if singular:
            return f"{singular}/{name}"
    return ""


def _ports_of(text: str | None) -> list[int]:
    """INCLUDE_INBOUND_PORTS (`9080,9090` or `*`) or POD_PORTS (a JSON list of container ports)."""
    value = _json_value(text)
    out: list[int] = []
    if isinstance(value, list):
        for p in value:
            if isinstance(p, Mapping) and str(p.get("protocol", "TCP")).upper() == "TCP":
                port = p.get("containerPort")
                if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536:
                    out.append(port)
    elif isinstance(value, int) and not isinstance(value, bool):
        out.append(value)
    elif isinstance(value, str):
        for part in value.split(","):
            part = part.strip()
            if part.isdigit() and 0 < int(part) < 65536:
                out.append(int(part))
    return out


def identity_from_node(metadata: Mapping[str, str], node_id: str | None = None) -> PodIdentity:
    """The pod's identity from the node metadata Istio's agent puts in Envoy's bootstrap: POD_NAME (or NAME),
    NAMESPACE, OWNER (the workload), LABELS, ISTIO_VERSION, INTERCEPTION_MODE, INCLUDE_INBOUND_PORTS and
    POD_PORTS (the application's ports, Istio's own 15000-15090 left out), INSTANCE_IPS; the pod IP also from the
    node id (`sidecar~IP~pod.ns~...`)."""
    name = metadata.get("POD_NAME") or metadata.get("NAME") or ""
    namespace = metadata.get("NAMESPACE") or ""
    ips = [i.strip() for i in (metadata.get("INSTANCE_IPS") or "").split(",") if i.strip()]
    ips = [i for i in ips if not i.lower().startswith("fe80:")]
    if node_id:
        parts = node_id.split("~")
        if len(parts) >= 3:
            if not ips and parts[1]:
                ips = [parts[1]]
            if not name and "." in parts[2]:
                name, _, ns = parts[2].partition(".")
                namespace = namespace or ns
    labels_value = _json_value(metadata.get("LABELS"))
    labels = (
        {str(k): str(v) for k, v in labels_value.items() if k not in _NOISY_LABELS}
        if isinstance(labels_value, Mapping)
        else {}
    )
    include = metadata.get("INCLUDE_INBOUND_PORTS")
    ports = [] if include in (None, "", "*") else _ports_of(include)
    if not ports:
        ports = _ports_of(metadata.get("POD_PORTS"))
    ports = sorted(p for p in dict.fromkeys(ports) if p not in ISTIO_PORT_RANGE)
    mode = (metadata.get("INTERCEPTION_MODE") or "").upper()
    return PodIdentity(
        name=name,
        namespace=namespace,
        pod_ip=ips[0] if ips else "",
        pod_ips=tuple(ips),
        labels=labels,
        has_sidecar=bool(node_id and node_id.startswith("sidecar~")),
        app_ports=tuple(ports),
        interception_mode=mode if mode in _MODES else "",
        istio_version=metadata.get("ISTIO_VERSION") or "",
        workload=workload_of_owner(metadata.get("OWNER") or "")
        or (f"deployment/{metadata['WORKLOAD_NAME']}" if metadata.get("WORKLOAD_NAME") else ""),
    )


def istio_minor(version: str) -> tuple[int, int] | None:
    """`1.3.0-rc.2` -> (1, 3); `1.4-alpha.945b...` -> (1, 4); None when it is not a version."""
    import re

    m = re.match(r"(\d+)\.(\d+)", version or "")
    return (int(m.group(1)), int(m.group(2))) if m else None
