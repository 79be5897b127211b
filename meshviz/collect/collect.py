"""Collecting one pod's evidence through the Kubernetes API.

    collection = collect_pod(api, "default", "reviews-v1-abc", progress=print)

Steps (each reported to `progress(step, state, detail)`: "started", then "done", "failed" or "fallback",
and "retry" before each retried request; finally ("done", "done", "captured" | "reconstructed, not captured")):

* "pod" - read the Pod: metadata, istio-proxy's securityContext, istio-init's arguments, application ports.
  No sidecar -> CollectError("no_sidecar"); istio-proxy not running -> "container_not_running".
* "config_dump" - `pilot-agent request GET config_dump` exec'd in istio-proxy (websocket, v4.channel.k8s.io).
  When exec is forbidden or unsupported, the dump is read from inside the capture container (next step),
  which shares the pod's network namespace and so reaches Envoy's admin listener on 127.0.0.1:15000
  (`pilot-agent request GET config_dump`, else curl or wget); only if that fails too, from the admin port
  through the API server's pod proxy, `GET /api/v1/namespaces/{ns}/pods/{pod}:15000/proxy/config_dump`
  (which Istio's 127.0.0.1 admin bind usually refuses).  The dump is parsed with the engine (bad_output
  otherwise) and redacted before it is kept.  All three failing is one CollectError naming each attempt.
* "netfilter" - an ephemeral container `meshviz-capture-<hex>` (NET_ADMIN + NET_RAW, as root,
  targetContainerName istio-proxy, so it shares the pod's network namespace) runs `capture_script()`, one
  read-only shell script printing iptables-save, `ip rule`, `ip route show table all` and the routing
  sysctls (and ip6tables-save when the pod has an IPv6 address; and the config dump when exec could not
  get it) between marker lines; meshviz waits for it to terminate, reads its log once, splits it and parses
  each part with the engine.  Its image is, by default, the pod's own istio-proxy image (Istio's proxyv2:
  iptables, iproute2, pilot-agent and curl, already on the node); `debug_image` overrides it, and a
  distroless proxy image (no shell) is replaced by `DEFAULT_DEBUG_IMAGE`.  The image used is in the notes.
* "reconstruct" - instead of "netfilter" when the ephemeral container is refused (403, 422 - RBAC, Pod
  Security admission, a validating admission policy - or the subresource does not exist): the rules are
  regenerated from istio-init's arguments / the CNI annotations with the engine's Istio generator, and the
  collection is marked `reconstructed=True` with a note saying "reconstructed, not captured".

Transient failures (5xx, 429, connection errors, timeouts of a single request) are retried with
exponential backoff; 4xx answers never are.  A Collection is returned only when every step succeeded:
otherwise CollectError says which step failed and why.  Nothing is written to the pod except the one
ephemeral container (which Kubernetes does not let anyone remove: it stays in the pod spec, terminated,
until the pod is deleted).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from kubernetes import client as k8s

from meshviz.collect.capture import CAPTURE_PREFIX, DEFAULT_DEBUG_IMAGE, capture_container, capture_image
from meshviz.collect.capture_log import _Capture, _Refused, _validate_capture, split_capture, split_config_dump
from meshviz.collect.config_dump import _EXEC_HOW, _accept_dump, _dump_fallbacks, _exec_dump_or_fallback
from meshviz.collect.discover import (
    PROXY_CONTAINER,
    has_sidecar,
    interception_mode,
    istio_version,
    proxy_container,
)
from meshviz.collect.errors import CollectError
from meshviz.collect.kube import error_for, get_json, is_transient
from meshviz.collect.run import Progress, _body_text, _Run
from meshviz.engine.api import (
    ReconstructionError,
    app_ports,
    effective_id,
    pod_ips,
    reconstruct_from_pod,
)

__all__ = ["DEFAULT_DEBUG_IMAGE", "Collection", "collect_pod"]


# --------------------------------------------------------------------------
# The result
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Collection:
    """Everything collected from one pod, ready to become an analysis.

    Text fields are "" when not available (only `ip_rule`/`ip_route`/`sysctl` of a reconstructed
    collection: the engine then assumes kernel defaults and says so).  `steps` is the step log
    ({"step", "state", "detail", "seconds"}); `notes` are what a user should know about how it was
    collected (fallbacks, reconstruction).
    """

    iptables: str
    ip_rule: str
    ip_route: str
    sysctl: str
    envoy_config_dump: str
    pod_ip: str
    pod_name: str
    namespace: str
    node: str
    labels: dict[str, str]
    annotations: dict[str, str]
    proxy_uid: int | None
    proxy_gid: int | None
    app_ports: list[int]
    interception_mode: str
    istio_version: str
    reconstructed: bool
    notes: list[str] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    nftables: str = ""  # `nft list ruleset`, when the capture image has nft

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Collection:
        names = {f for f in cls.__dataclass_fields__}
        missing = names - set(data) - {"notes", "steps", "nftables"}
        if missing:
            raise ValueError(f"Collection.from_dict: missing {', '.join(sorted(missing))}")
        values = {k: data[k] for k in names if k in data}
        values["labels"] = dict(values["labels"])
        values["annotations"] = dict(values["annotations"])
        values["app_ports"] = [int(p) for p in values["app_ports"]]
        values["notes"] = list(values.get("notes") or [])
        values["steps"] = [dict(s) for s in values.get("steps") or []]
        return cls(**values)


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def _proxy_state(pod: Mapping[str, Any]) -> tuple[bool, str]:
    status = pod.get("status") or {}
    for key in ("containerStatuses", "initContainerStatuses"):
        for cs in status.get(key) or []:
            if isinstance(cs, Mapping) and cs.get("name") == PROXY_CONTAINER:
                state = cs.get("state") or {}
                if "running" in state:
                    return True, "running"
                for what in ("waiting", "terminated"):
                    if what in state:
                        reason = (state.get(what) or {}).get("reason") or ""
                        return False, f"{what}{f' ({reason})' if reason else ''}"
                return False, "in no known state"
    return False, "has no status yet"


# --------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------


def _read_pod(v1: k8s.CoreV1Api, run: _Run, namespace: str, name: str, step: str) -> dict[str, Any]:
    data = run.retry.call(
        lambda: get_json(v1.read_namespaced_pod, name, namespace, timeout=run.request_timeout(step)),
        step,
        f"read pod {namespace}/{name}",
        run.note_retry(step),
    )
    if not isinstance(data, dict):
        raise CollectError("bad_output", step, f"pod {namespace}/{name}: the API server sent no object")
    return data


def _check_pod(pod: Mapping[str, Any], namespace: str, name: str) -> None:
    where = f"pod {namespace}/{name}"
    if not has_sidecar(pod):
        raise CollectError("no_sidecar", "pod", f"{where} has no Istio sidecar (no injected istio-proxy container)")
    meta = pod.get("metadata") or {}
    phase = (pod.get("status") or {}).get("phase") or "Unknown"
    if meta.get("deletionTimestamp"):
        raise CollectError("container_not_running", "pod", f"{where} is terminating", retryable=False)
    if phase != "Running":
        raise CollectError("container_not_running", "pod", f"{where} is {phase}, not Running", retryable=True)
    running, state = _proxy_state(pod)
    if not running:
        raise CollectError(
            "container_not_running", "pod", f"{where}: container {PROXY_CONTAINER} is {state}", retryable=True
        )


def _netfilter(
    api: k8s.ApiClient,
    run: _Run,
    pod: Mapping[str, Any],
    namespace: str,
    name: str,
    image: str,
    why: str,
    notes: list[str],
    want_dump: bool = False,
) -> _Capture:
    """Add the capture container, wait for it to terminate, read and split its log; raises _Refused when the
    cluster does not allow the ephemeral container (so the caller reconstructs).  With `want_dump` the same
    container also reads Envoy's config dump (exec was not possible)."""
    v1 = k8s.CoreV1Api(api)
    step = "netfilter"
    ipv6 = any(":" in ip for ip in pod_ips(pod))
    cname = f"{CAPTURE_PREFIX}{secrets.token_hex(5)}"
    extra = " and the Envoy config dump" if want_dump else ""
    run.emit(step, "started", f"ephemeral container {cname} (image {image}: {why}) reading the rules{extra}")
    body = {"spec": {"ephemeralContainers": [capture_container(cname, image, ipv6, want_dump)]}}
    try:
        run.retry.call(
            lambda: v1.patch_namespaced_pod_ephemeralcontainers(
                name,
                namespace,
                body,
                _content_type="application/strategic-merge-patch+json",
                _preload_content=False,
                _request_timeout=run.request_timeout(step),
            ),
            step,
            f"add ephemeral container {cname} to {namespace}/{name}",
            run.note_retry(step),
        )
    except CollectError as e:
        if e.kind == "forbidden":
            raise _Refused(e.message) from None
        if e.kind == "not_found":
            # The pod was there a moment ago: either it is gone, or the cluster has no ephemeralcontainers
            # subresource (Kubernetes < 1.23).
            try:
                _read_pod(v1, run, namespace, name, step)
            except CollectError as gone:
                raise gone from None
            raise _Refused(f"the cluster has no pods/ephemeralcontainers subresource: {e.message}") from None
        if e.kind == "bad_output" and "unexpected answer 400" in e.message:
            # e.g. ephemeral containers disabled on this cluster
            raise _Refused(e.message) from None
        raise
    notes.append(
        f"ephemeral container {cname} (image {image}: {why}) was added to the pod to capture the rules"
        f"{extra}; Kubernetes keeps it in the pod spec (terminated) until the pod is deleted"
    )
    log = _wait_and_read(v1, run, namespace, name, cname, image)
    parts = split_capture(log, ipv6)
    capture = _validate_capture(parts)
    dump: str | None = None
    tool = dump_error = ""
    if want_dump:
        dump, tool, dump_error = split_config_dump(log)
    run.emit(step, "done", f"captured by {cname} (image {image})")
    return _Capture(
        capture.iptables,
        capture.ip_rule,
        capture.ip_route,
        capture.sysctl,
        container=cname,
        image=image,
        config_dump=dump,
        dump_tool=tool,
        dump_error=dump_error,
        nftables=capture.nftables,
    )


_CANNOT_START: Final = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError", "CreateContainerError"}
)
#: A terminated state with one of these reasons: the runtime could not run the command (e.g. no /bin/sh).
_START_FAILED: Final = frozenset({"StartError", "ContainerCannotRun", "RunContainerError"})


def _wait_and_read(v1: k8s.CoreV1Api, run: _Run, namespace: str, name: str, cname: str, image: str = "") -> str:
    step = "netfilter"
    delay = 0.2
    last = "not started"
    while True:
        if time.monotonic() >= run.deadline:
            raise CollectError(
                "timeout",
                step,
                f"capture container {cname} did not terminate within {run.timeout:g}s (last state: {last}); "
                "it stays in the pod spec and cannot be removed",
            )
        pod = _read_pod(v1, run, namespace, name, step)
        statuses = (pod.get("status") or {}).get("ephemeralContainerStatuses") or []
        cs = next((s for s in statuses if isinstance(s, Mapping) and s.get("name") == cname), None)
        if cs is not None:
            state = cs.get("state") or {}
            if "terminated" in state:
                terminated = state.get("terminated") or {}
                code = terminated.get("exitCode")
                reason = str(terminated.get("reason") or "")
                if reason in _START_FAILED:
                    message = str(terminated.get("message") or "")[:300]
                    raise CollectError(
                        "exec_unsupported",
                        step,
                        f"capture container {cname} could not run its script ({reason}"
                        f"{f': {message}' if message else ''}); its image {image or '?'} needs /bin/sh, "
                        f"iptables-save and ip - pass debug_image (e.g. {DEFAULT_DEBUG_IMAGE})",
                        retryable=False,
                    )
                last = f"terminated (exit {code})"
                break
            if "waiting" in state:
                reason = str((state.get("waiting") or {}).get("reason") or "")
                last = f"waiting ({reason})" if reason else "waiting"
                if reason in _CANNOT_START:
                    message = str((state.get("waiting") or {}).get("message") or "")
                    raise CollectError(
                        "container_not_running",
                        step,
                        f"capture container {cname} cannot start: {reason}{f': {message}' if message else ''}",
                        retryable=False,
                    )
            elif "running" in state:
                last = "running"
        time.sleep(min(delay, max(0.0, run.deadline - time.monotonic())))
        delay = min(delay * 2, 2.0)
    resp = run.retry.call(
        lambda: v1.read_namespaced_pod_log(
            name, namespace, container=cname, _preload_content=False, _request_timeout=run.request_timeout(step)
        ),
        step,
        f"read the log of {cname}",
        run.note_retry(step),
    )
    return _body_text(resp)


def _reconstruct(run: _Run, pod: Mapping[str, Any], reason: str, notes: list[str]) -> _Capture:
    step = "reconstruct"
    run.emit(step, "started", f"capture refused ({reason}); regenerating the rules from the pod spec")
    try:
        r = reconstruct_from_pod(pod, f"the capture container was refused ({reason})")
    except ReconstructionError as e:
        run.emit(step, "failed", e.why)
        if e.kind == "bad_output":
            raise CollectError("bad_output", step, str(e)) from e
        raise CollectError(
            "forbidden",
            step,
            f"the capture container was refused ({reason}) and the rules cannot be reconstructed: {e.why}",
            retryable=False,
        ) from e
    iptables = r.iptables + r.ip6tables
    notes.extend(r.notes)
    run.emit(step, "done", f"{len(iptables.splitlines())} lines regenerated from {r.source}")
    return _Capture(iptables, r.ip_rule + r.ip6_rule, r.ip_route + r.ip6_route, "")


# --------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------


def collect_pod(
    api: k8s.ApiClient,
    namespace: str,
    pod: str,
    *,
    progress: Progress | None = None,
    timeout: float = 60.0,
    retries: int = 3,
    debug_image: str | None = None,
    backoff: float = 0.5,
) -> Collection:
    """Collect one pod's evidence (see the module doc); raises CollectError, never returns partial data.

    `timeout` bounds the whole collection; `retries` is how many times a transient failure is retried
    (with `backoff` * 2**n seconds between tries); `debug_image` overrides the capture container's image
    (default: the pod's own istio-proxy image, see `capture_image`).
    """
    run = _Run(progress, timeout, retries, backoff)
    v1 = k8s.CoreV1Api(api)
    notes: list[str] = []
    try:
        run.emit("pod", "started", f"reading pod {namespace}/{pod}")
        try:
            obj = _read_pod(v1, run, namespace, pod, "pod")
            _check_pod(obj, namespace, pod)
        except CollectError as e:
            run.emit("pod", "failed", e.message)
            raise
        proxy = proxy_container(obj) or {}
        meta = obj.get("metadata") or {}
        ips = pod_ips(obj)
        run.emit("pod", "done", f"pod IP {ips[0] if ips else '?'}, node {(obj.get('spec') or {}).get('nodeName')}")

        # exec first: when it works the capture container does not read the dump a second time
        dumped = _exec_dump_or_fallback(api, run, namespace, pod)
        exec_error = dumped if isinstance(dumped, CollectError) else None
        envoy = "" if isinstance(dumped, CollectError) else _accept_dump(run, dumped, _EXEC_HOW, notes)

        image, why = capture_image(obj, debug_image)
        reconstructed = False
        refused = ""
        try:
            capture = _netfilter(api, run, obj, namespace, pod, image, why, notes, want_dump=exec_error is not None)
        except _Refused as r:
            run.emit("netfilter", "fallback", r.reason)
            refused = r.reason
            capture = _reconstruct(run, obj, r.reason, notes)
            reconstructed = True
        except CollectError as e:
            run.emit("netfilter", "failed", e.message)
            raise

        if exec_error is not None:
            envoy = _dump_fallbacks(
                api, run, namespace, pod, exec_error, None if reconstructed else capture, refused, notes
            )
    except CollectError:
        raise
    except Exception as exc:  # anything unexpected still comes out as a CollectError
        if is_transient(exc):
            raise error_for(exc, "collect", f"collect {namespace}/{pod}") from exc
        raise CollectError("bad_output", "collect", f"{type(exc).__name__}: {exc}", retryable=False) from exc

    collection = Collection(
        iptables=capture.iptables,
        ip_rule=capture.ip_rule,
        ip_route=capture.ip_route,
        sysctl=capture.sysctl,
        envoy_config_dump=envoy,
        pod_ip=ips[0] if ips else "",
        pod_name=pod,
        namespace=namespace,
        node=str((obj.get("spec") or {}).get("nodeName") or ""),
        labels={str(k): str(v) for k, v in (meta.get("labels") or {}).items()},
        annotations={str(k): str(v) for k, v in (meta.get("annotations") or {}).items()},
        proxy_uid=effective_id(proxy, obj, "runAsUser"),
        proxy_gid=effective_id(proxy, obj, "runAsGroup"),
        app_ports=app_ports(obj),
        interception_mode=interception_mode(obj),
        istio_version=istio_version(obj),
        reconstructed=reconstructed,
        notes=notes,
        steps=run.steps,
        nftables=capture.nftables,
    )
    # collection.steps is run.steps: the final entry lands in it too.
    run.emit("done", "done", "reconstructed, not captured" if reconstructed else "captured")
    return collection
