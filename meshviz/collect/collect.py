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

import ast
import contextlib
import json
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream
from websocket import WebSocketBadStatusException, WebSocketException

from meshviz.collect.discover import (
    PROXY_CONTAINER,
    has_sidecar,
    interception_mode,
    istio_version,
    proxy_container,
)
from meshviz.collect.errors import CollectError
from meshviz.collect.kube import Retry, error_for, get_json, is_transient, status_message
from meshviz.engine.api import (
    ParseError,
    ReconstructionError,
    app_ports,
    effective_id,
    parse_config_dump,
    parse_ip_routes,
    parse_ip_rules,
    parse_iptables,
    parse_nftables,
    parse_sysctls,
    pod_ips,
    reconstruct_from_pod,
    redact_config_dump_text,
)

__all__ = [
    "CAPTURE_SCRIPT",
    "CONFIG_DUMP_COMMAND",
    "DEFAULT_DEBUG_IMAGE",
    "MARKER",
    "Collection",
    "capture_container",
    "capture_image",
    "capture_script",
    "collect_pod",
    "split_capture",
    "split_config_dump",
]

Progress = Callable[[str, str, str], None]

#: The capture image used when the pod's own istio-proxy image cannot run the capture: Istio's distroless
#: proxy variant has no shell (or the pod spec names no image).  netshoot (Alpine; iptables legacy+nft,
#: iproute2, procps, curl; ~200 MB, widely mirrored).  By default the capture runs the pod's own istio-proxy
#: image instead (see `capture_image`); `collect_pod(debug_image=...)` overrides both.
DEFAULT_DEBUG_IMAGE: Final = "docker.io/nicolaka/netshoot:v0.13"
CONFIG_DUMP_COMMAND: Final = ("pilot-agent", "request", "GET", "config_dump")
ADMIN_PORT: Final = 15000
#: Envoy's admin listener as seen from inside the pod's network namespace (Istio binds it to localhost).
ADMIN_URL: Final = f"http://127.0.0.1:{ADMIN_PORT}/config_dump"
ADMIN_URL6: Final = f"http://[::1]:{ADMIN_PORT}/config_dump"
MARKER: Final = "### meshviz:"
CAPTURE_PREFIX: Final = "meshviz-capture-"

#: Sysctls the engine models (sysctl -a lines matching this are kept).
_SYSCTL_PATTERN: Final = (
    r"^net\.ipv4\.(ip_forward|tcp_fwmark_accept|ip_nonlocal_bind|ip_local_port_range"
    r"|conf\.[^ ]+\.(route_localnet|rp_filter|src_valid_mark|accept_local|forwarding)) ="
    r"|^net\.ipv6\.(ip_nonlocal_bind|conf\.[^ ]+\.forwarding) ="
)
_SYSCTL_FILES: Final = (
    "net/ipv4/ip_forward net/ipv4/tcp_fwmark_accept net/ipv4/ip_nonlocal_bind net/ipv4/ip_local_port_range "
    "net/ipv4/conf/*/route_localnet net/ipv4/conf/*/rp_filter net/ipv4/conf/*/src_valid_mark "
    "net/ipv4/conf/*/accept_local net/ipv4/conf/*/forwarding"
)


def capture_script(ipv6: bool = False, config_dump: bool = False) -> str:
    """The shell script the capture container runs: read-only commands, each output between marker lines.

    `### meshviz:<part>` starts a part, `### meshviz:rc <part> <exit status>` ends it, `### meshviz:end`
    ends the capture.  iptables-save is taken from whichever backend (legacy or nft) holds rules, the way
    istio-iptables itself chooses; sysctls come from `sysctl -a` filtered to the keys the engine models,
    or from /proc/sys when the image has no sysctl (Istio's proxyv2 has no procps).

    With `config_dump`, the script first reads Envoy's config dump from the admin listener on
    127.0.0.1:15000 (reachable: the container shares the pod's network namespace) with
    `pilot-agent request GET config_dump` (proxyv2), else curl, else wget; its stdout is the `config_dump`
    part, the tool used is the `config_dump-tool` part and its stderr the `config_dump-stderr` part.  It
    comes first so that, should the kubelet rotate a very large log, the netfilter parts at the end survive.
    """
    families = [("iptables-save", "iptables")] + ([("ip6tables-save", "ip6tables")] if ipv6 else [])
    lines = [
        "set -u",
        "part() { printf '\\n" + MARKER + '%s\\n\' "$1"; }',
        "rc() { printf '\\n" + MARKER + 'rc %s %s\\n\' "$1" "$2"; }',
        "save() {",
        '  for b in "$1-legacy-save" "$1-nft-save"; do',
        '    if command -v "$b" >/dev/null 2>&1; then',
        '      out=$("$b" 2>/dev/null) || continue',
        '      case "$out" in *"-A "*) printf \'%s\\n\' "$out"; return 0;; esac',
        "    fi",
        "  done",
        '  "$1-save"',
        "}",
        "sysctls() {",
        "  if command -v sysctl >/dev/null 2>&1; then",
        f"    sysctl -a 2>/dev/null | grep -E '{_SYSCTL_PATTERN}'",
        "  else",
        f"    cd /proc/sys && for f in {_SYSCTL_FILES}; do",
        '      [ -r "$f" ] && printf \'%s = %s\\n\' "$(echo "$f" | tr / .)" "$(cat "$f")"',
        "    done; true",
        "  fi",
        "}",
    ]
    if config_dump:
        curl = f"curl -sS --fail --max-time 30 {ADMIN_URL}"
        wget = f"wget -q -T 30 -O - {ADMIN_URL}"
        if ipv6:  # an IPv6-only pod's Envoy listens on ::1
            curl += f" || curl -sS -g --fail --max-time 30 '{ADMIN_URL6}'"
            wget += f" || wget -q -T 30 -O - '{ADMIN_URL6}'"
        lines += [
            "dump_tool=none",
            "for t in pilot-agent curl wget; do",
            '  if command -v "$t" >/dev/null 2>&1; then dump_tool=$t; break; fi',
            "done",
            "dump() {",
            '  case "$dump_tool" in',
            f"    pilot-agent) {' '.join(CONFIG_DUMP_COMMAND)};;",
            f"    curl) {curl};;",
            f"    wget) {wget};;",
            '    *) echo "no pilot-agent, curl or wget in the capture image to read Envoy\'s admin port" >&2;'
            " return 127;;",
            "  esac",
            "}",
            'part config_dump-tool; echo "$dump_tool"',
            # stdout straight into the log, stderr kept apart (a container log mixes the two)
            "part config_dump; { err=$(dump 2>&1 >&3); } 3>&1; rc config_dump $?",
            "part config_dump-stderr; printf '%s\\n' \"$err\"",
        ]
    for part, binary in families:
        lines.append(f"part {part}; save {binary}; rc {part} $?")
    lines += [
        # native nftables (Istio's nft backend, kube-proxy's nftables mode): only where the image has nft
        "if command -v nft >/dev/null 2>&1; then part nft-ruleset; nft list ruleset; rc nft-ruleset $?; fi",
        "part ip-rule; ip rule show; rc ip-rule $?",
        "part ip-route; ip route show table all; rc ip-route $?",
        "part sysctl; sysctls; rc sysctl $?",
        "part end",
    ]
    return "\n".join(lines) + "\n"


CAPTURE_SCRIPT: Final = capture_script(False)


def capture_container(name: str, image: str, ipv6: bool = False, config_dump: bool = False) -> dict[str, Any]:
    """The ephemeral container spec meshviz adds (as sent in the strategic merge patch).

    It runs as root (uid 0, runAsNonRoot false: Istio's proxyv2 image would otherwise run as 1337) with
    NET_ADMIN and NET_RAW, which reading the netfilter tables needs; Pod Security "baseline" and
    "restricted" refuse exactly that, and meshviz then reconstructs instead.
    """
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", capture_script(ipv6, config_dump)],
        "targetContainerName": PROXY_CONTAINER,
        "stdin": False,
        "tty": False,
        "terminationMessagePolicy": "File",
        "securityContext": {
            # iptables-save needs NET_ADMIN (and NET_RAW for the legacy backend's raw socket) as root;
            # nothing is written: every command only reads.
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
            "runAsUser": 0,
            "runAsNonRoot": False,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
        },
    }


def _is_distroless(image: str) -> bool:
    """Istio's distroless variant (`proxyv2:1.18.2-distroless`): no shell, so it cannot run the script."""
    last = image.split("@", 1)[0].rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else ""
    return "distroless" in tag


def capture_image(pod: Mapping[str, Any], debug_image: str | None = None) -> tuple[str, str]:
    """The capture container's image and why it was chosen.

    `debug_image` when given; otherwise the pod's own istio-proxy image (Istio's proxyv2 carries
    iptables-save (legacy and nft), ip and pilot-agent - istio-init runs from it - and is already on the
    node); `DEFAULT_DEBUG_IMAGE` when that image is the distroless variant or the spec names none.
    """
    if debug_image:
        return debug_image, "the debug_image override"
    proxy = proxy_container(pod) or {}
    image = str(proxy.get("image") or "").strip()
    if not image:
        return DEFAULT_DEBUG_IMAGE, f"the pod spec names no {PROXY_CONTAINER} image"
    if _is_distroless(image):
        return (
            DEFAULT_DEBUG_IMAGE,
            f"the pod's {PROXY_CONTAINER} image {image} is Istio's distroless variant, which has no shell; "
            "pass debug_image to choose another",
        )
    return image, f"the pod's own {PROXY_CONTAINER} image, already on the node"


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


class _Run:
    """One collection: deadline, retries, the step log."""

    def __init__(self, progress: Progress | None, timeout: float, retries: int, backoff: float) -> None:
        self.progress = progress
        self.deadline = time.monotonic() + timeout
        self.timeout = timeout
        self.retry = Retry(attempts=max(1, retries + 1), base=backoff, deadline=self.deadline)
        self.steps: list[dict[str, Any]] = []
        self._started: dict[str, float] = {}

    def remaining(self, step: str) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise CollectError("timeout", step, f"the collection did not finish within {self.timeout:g}s")
        return left

    def request_timeout(self, step: str, cap: float = 30.0) -> float:
        return max(0.5, min(self.remaining(step), cap))

    def emit(self, step: str, state: str, detail: str) -> None:
        if state == "started":
            self._started[step] = time.monotonic()
        else:
            began = self._started.get(step, time.monotonic())
            self.steps.append(
                {"step": step, "state": state, "detail": detail, "seconds": round(time.monotonic() - began, 3)}
            )
        if self.progress is not None:
            self.progress(step, state, detail)

    def note_retry(self, step: str) -> Callable[[str], None]:
        return lambda detail: self.emit(step, "retry", detail)


def _first_error(errors: tuple[ParseError, ...] | list[ParseError]) -> str:
    e = errors[0]
    return f"{e.source}:{e.line}:{e.column}: {e.message}: {e.text.strip()[:200]}"


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


def _exec_config_dump(api: k8s.ApiClient, run: _Run, namespace: str, name: str) -> str:
    """`pilot-agent request GET config_dump` over the exec websocket; raises CollectError."""
    v1 = k8s.CoreV1Api(api)
    step = "config_dump"
    what = f"exec {' '.join(CONFIG_DUMP_COMMAND)} in {namespace}/{name} ({PROXY_CONTAINER})"

    def once() -> str:
        try:
            ws = stream(
                v1.connect_get_namespaced_pod_exec,
                name,
                namespace,
                command=list(CONFIG_DUMP_COMMAND),
                container=PROXY_CONTAINER,
                stderr=True,
                stdin=False,
                stdout=True,
                tty=False,
                _preload_content=False,
            )
        except WebSocketBadStatusException as e:
            body = e.resp_body.decode("utf-8", "replace") if isinstance(e.resp_body, bytes) else str(e.resp_body)
            raise _handshake_error(e.status_code, body, step, what) from None
        except ApiException as e:
            # The client wraps a refused websocket handshake into ApiException(status=0, reason=str(exc)).
            m = _HANDSHAKE.search(str(e.reason or ""))
            if e.status != 0 or m is None:
                raise
            raise _handshake_error(int(m.group(1)), m.group(2) or "", step, what) from None
        stdout: list[str] = []
        stderr: list[str] = []
        status_text = ""
        try:
            while ws.is_open():
                left = run.remaining(step)
                ws.update(timeout=min(left, 1.0))
                stdout.append(ws.read_channel(1))
                stderr.append(ws.read_channel(2))
                status_text += ws.read_channel(3)
            stdout.append(ws.read_channel(1))
            stderr.append(ws.read_channel(2))
            status_text += ws.read_channel(3)
        finally:
            ws.close()
        return _exec_result("".join(stdout), "".join(stderr), status_text, what)

    try:
        return run.retry.call(once, step, what, run.note_retry(step))
    except CollectError:
        raise
    except WebSocketException as e:
        raise CollectError("exec_unsupported", step, f"{what}: the exec stream failed: {e}") from None


_HANDSHAKE = re.compile(r"Handshake status (\d+)[^\n]*?(?:-\+-\+- .*? -\+-\+- (.*))?$", re.S)


def _handshake_error(code: int, body: str, step: str, what: str) -> Exception:
    """The API server answered the exec upgrade with an HTTP error: the same error as any other request."""
    body = body.strip()
    if body.startswith(("b'", 'b"')):
        with contextlib.suppress(ValueError, SyntaxError, AttributeError):
            body = ast.literal_eval(body).decode("utf-8", "replace")
    exc = ApiException(status=code, reason="")
    exc.body = body
    if code == 400 and "upgrade request required" in body.lower():
        return CollectError("exec_unsupported", step, f"{what}: {status_message(exc)}")
    if code == 400 and not any(h in body.lower() for h in ("not found", "not running", "waiting", "not valid")):
        return CollectError("exec_unsupported", step, f"{what}: {status_message(exc)}")
    return error_for(exc, step, what)


def _exec_result(stdout: str, stderr: str, status_text: str, what: str) -> str:
    step = "config_dump"
    if not status_text.strip():
        raise CollectError("exec_unsupported", step, f"{what}: the stream closed without an exit status")
    try:
        status = json.loads(status_text)
    except ValueError:
        raise CollectError("bad_output", step, f"{what}: unreadable exit status {status_text[:200]!r}") from None
    if status.get("status") == "Success":
        return stdout
    message = str(status.get("message") or "")
    causes = ((status.get("details") or {}).get("causes")) or []
    code = next((c.get("message") for c in causes if isinstance(c, Mapping) and c.get("reason") == "ExitCode"), None)
    low = message.lower()
    if any(h in low for h in ("container not found", "is not running", "is waiting to start")):
        raise CollectError("container_not_running", step, f"{what}: {message}", retryable=True)
    if "executable file not found" in low or "no such file" in low or code in ("126", "127"):
        raise CollectError("exec_unsupported", step, f"{what}: pilot-agent cannot run in the container: {message}")
    detail = stderr.strip().splitlines()[-1] if stderr.strip() else message
    raise CollectError("exec_unsupported", step, f"{what}: exited with status {code or '?'}: {detail[:300]}")


def _proxy_config_dump(api: k8s.ApiClient, run: _Run, namespace: str, name: str) -> str:
    v1 = k8s.CoreV1Api(api)
    step = "config_dump"
    what = f"GET {name}:{ADMIN_PORT}/config_dump through the API server's pod proxy"

    def once() -> str:
        resp = v1.connect_get_namespaced_pod_proxy_with_path(
            f"{name}:{ADMIN_PORT}",
            namespace,
            "config_dump",
            _preload_content=False,
            _request_timeout=run.request_timeout(step, 60.0),
        )
        return _body_text(resp)

    return run.retry.call(once, step, what, run.note_retry(step))


def _check_dump(text: str, how: str) -> tuple[str, int]:
    """Parse the dump with the engine and redact it: (redacted text, number of redacted values)."""
    step = "config_dump"
    if not text.strip():
        raise CollectError("bad_output", step, f"the config dump ({how}) is empty")
    parsed = parse_config_dump(text, source="config_dump")
    if parsed.errors:
        raise CollectError("bad_output", step, f"the config dump ({how}) does not parse: {_first_error(parsed.errors)}")
    return redact_config_dump_text(text)


def _accept_dump(run: _Run, text: str, how: str, notes: list[str]) -> str:
    step = "config_dump"
    try:
        redacted, count = _check_dump(text, how)
    except CollectError as e:
        run.emit(step, "failed", e.message)
        raise
    if count:
        notes.append(f"{count} secret value(s) in the Envoy config dump were redacted before anything was kept")
    run.emit(step, "done", f"{len(text)} bytes via {how}")
    return redacted


_EXEC_HOW: Final = f"exec {' '.join(CONFIG_DUMP_COMMAND)} in {PROXY_CONTAINER}"
_PROXY_HOW: Final = f"admin port {ADMIN_PORT} through the API server's pod proxy"


def _exec_dump_or_fallback(api: k8s.ApiClient, run: _Run, namespace: str, name: str) -> str | CollectError:
    """The dump over exec, or - when exec is forbidden or unsupported - that error, for the fallbacks."""
    step = "config_dump"
    run.emit(step, "started", f"{' '.join(CONFIG_DUMP_COMMAND)} in {PROXY_CONTAINER}")
    try:
        return _exec_config_dump(api, run, namespace, name)
    except CollectError as e:
        if e.kind not in ("forbidden", "exec_unsupported"):
            run.emit(step, "failed", e.message)
            raise
        run.emit(
            step,
            "fallback",
            f"{e.message}; the capture container will read it from Envoy's admin listener "
            f"(127.0.0.1:{ADMIN_PORT}) instead",
        )
        return e


def _dump_fallbacks(
    api: k8s.ApiClient,
    run: _Run,
    namespace: str,
    name: str,
    exec_error: CollectError,
    capture: _Capture | None,
    refused: str,
    notes: list[str],
) -> str:
    """Exec was not possible: the dump the capture container read, else the admin port through the pod
    proxy; all failing is one CollectError naming each attempt."""
    step = "config_dump"
    attempts = [exec_error.message]  # "exec pilot-agent request GET config_dump in ns/pod (istio-proxy): ..."
    if capture is not None and capture.config_dump is not None:
        how = f"{capture.dump_tool} in the capture container {capture.container} ({capture.image})"
        try:
            redacted, count = _check_dump(capture.config_dump, how)
        except CollectError as bad:
            attempts.append(f"{how}: {bad.message}")
        else:
            notes.append(
                f"Envoy config dump read inside the capture container {capture.container} with {capture.dump_tool} "
                f"(Envoy's admin listener 127.0.0.1:{ADMIN_PORT}, reachable from the pod's network namespace) "
                f"because exec in {PROXY_CONTAINER} was not possible: {exec_error.message}"
            )
            if count:
                notes.append(f"{count} secret value(s) in the Envoy config dump were redacted before anything was kept")
            run.emit(step, "done", f"{len(capture.config_dump)} bytes via {how}")
            return redacted
    elif capture is not None:
        attempts.append(f"the capture container {capture.container} ({capture.image}): {capture.dump_error}")
    else:
        attempts.append(f"the capture container: it was refused ({refused})")
    run.emit(step, "fallback", f"{attempts[-1]}; trying the {_PROXY_HOW}")
    try:
        text = _proxy_config_dump(api, run, namespace, name)
    except CollectError as e2:
        attempts.append(f"admin port {ADMIN_PORT}: {e2.message}")
        message = "no Envoy config dump, every way failed: " + "; ".join(
            f"({i}) {a}" for i, a in enumerate(attempts, 1)
        )
        run.emit(step, "failed", message)
        raise CollectError(exec_error.kind, step, message, retryable=False) from None
    notes.append(
        f"Envoy config dump read from the {_PROXY_HOW} because exec was not possible ({exec_error.message}) "
        f"and neither was the capture container ({attempts[-1]})"
    )
    return _accept_dump(run, text, _PROXY_HOW, notes)


@dataclass(frozen=True)
class _Capture:
    iptables: str
    ip_rule: str
    ip_route: str
    sysctl: str
    container: str = ""  # the capture container's name ("" when reconstructed)
    image: str = ""
    config_dump: str | None = None  # read by the capture container (only when asked and it worked)
    dump_tool: str = ""
    dump_error: str = ""  # why the capture container has no dump (when it was asked for one)
    nftables: str = ""  # `nft list ruleset` (when the capture image has nft)


@dataclass(frozen=True)
class _Log:
    parts: dict[str, str]  # part -> text (without the marker lines)
    codes: dict[str, str]  # part -> exit status, as printed
    ended: bool


def _read_log(log: str) -> _Log:
    parts: dict[str, list[str]] = {}
    codes: dict[str, str] = {}
    current: str | None = None
    ended = False
    for line in log.splitlines():
        if line.startswith(MARKER):
            tag = line[len(MARKER) :].strip()
            if tag.startswith("rc "):
                _, part, code = ([*tag.split(" ", 2), "", ""])[:3]
                codes[part] = code.strip()
                current = None
            elif tag == "end":
                ended = True
                current = None
            else:
                current = tag
                parts[current] = []
            continue
        if current is not None:
            parts[current].append(line)
    return _Log({k: "\n".join(v).strip("\n") for k, v in parts.items()}, codes, ended)


def split_capture(log: str, ipv6: bool = False) -> dict[str, str]:
    """The capture container's log split into parts (`iptables-save`, `ip-rule`, `ip-route`, `sysctl`,
    `ip6tables-save`); raises CollectError("bad_output") for a missing part, a failed command, or an
    empty part.  (A `config_dump` part is read separately: see `split_config_dump`.)"""
    step = "netfilter"
    read = _read_log(log)
    wanted = ["iptables-save", "ip-rule", "ip-route", "sysctl"] + (["ip6tables-save"] if ipv6 else [])
    if not read.ended:
        raise CollectError("bad_output", step, "the capture log is incomplete (no end marker): the output was cut off")
    out: dict[str, str] = {}
    for part in wanted:
        if part not in read.parts:
            raise CollectError("bad_output", step, f"the capture log has no {part} part")
        text = read.parts[part]
        code = read.codes.get(part, "?")
        if code != "0":
            raise CollectError(
                "bad_output", step, f"{part} failed in the capture container (exit status {code}): {text[-300:]!r}"
            )
        if not text.strip():
            raise CollectError("bad_output", step, f"{part} printed nothing")
        out[part] = text + "\n"
    if read.codes.get("nft-ruleset") == "0" and read.parts.get("nft-ruleset", "").strip():
        out["nft-ruleset"] = read.parts["nft-ruleset"] + "\n"
    return out


def split_config_dump(log: str) -> tuple[str | None, str, str]:
    """The config dump the capture script read (`capture_script(config_dump=True)`):
    (dump text or None, the tool that read it, why there is no dump)."""
    read = _read_log(log)
    tool = read.parts.get("config_dump-tool", "").strip() or "?"
    if "config_dump" not in read.parts:
        return None, tool, "the capture log has no config_dump part (cut off?)"
    code = read.codes.get("config_dump", "?")
    stderr = read.parts.get("config_dump-stderr", "").strip()
    last = stderr.splitlines()[-1][:300] if stderr else ""
    if code != "0":
        return None, tool, f"{tool} failed (exit status {code}){f': {last}' if last else ''}"
    text = read.parts["config_dump"]
    if not text.strip():
        return None, tool, f"{tool} printed nothing{f': {last}' if last else ''}"
    return text + "\n", tool, ""


def _validate_capture(parts: Mapping[str, str]) -> _Capture:
    step = "netfilter"
    iptables = parts["iptables-save"] + parts.get("ip6tables-save", "")
    ipt = parse_iptables(iptables, source="iptables-save")
    if ipt.errors:
        raise CollectError("bad_output", step, f"iptables-save output does not parse: {_first_error(ipt.errors)}")
    nft = parse_nftables(parts.get("nft-ruleset", ""), source="nft list ruleset")
    if nft.errors:
        raise CollectError("bad_output", step, f"nft list ruleset does not parse: {_first_error(nft.errors)}")
    if not any(ch.rules for rs in ipt.rulesets for t in rs.tables for ch in t.chains) and not nft.ruleset.rule_count():
        raise CollectError(
            "bad_output", step, "iptables-save and nft list ruleset show no rules at all: Istio's capture is not there"
        )
    checks: list[tuple[str, str, tuple[ParseError, ...]]] = [
        ("ip rule", parts["ip-rule"], parse_ip_rules(parts["ip-rule"], source="ip rule").errors),
        ("ip route", parts["ip-route"], parse_ip_routes(parts["ip-route"], source="ip route").errors),
        ("sysctl", parts["sysctl"], parse_sysctls(parts["sysctl"], source="sysctl").errors),
    ]
    for what, _text, errors in checks:
        if errors:
            raise CollectError("bad_output", step, f"{what} output does not parse: {_first_error(errors)}")
    return _Capture(
        iptables, parts["ip-rule"], parts["ip-route"], parts["sysctl"], nftables=parts.get("nft-ruleset", "")
    )


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


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


def _body_text(resp: Any) -> str:
    """The text of a raw (`_preload_content=False`) response."""
    data = getattr(resp, "data", resp)
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)


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
