"""Envoy's config dump from the pod: exec `pilot-agent request GET config_dump` in istio-proxy, and the fallbacks (the
capture container, the admin port through the API server's proxy) with what each failure means.
"""

from __future__ import annotations

import ast
import contextlib
import json
import re
from collections.abc import Mapping
from typing import Final

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream
from websocket import WebSocketBadStatusException, WebSocketException

from meshviz.collect.capture import ADMIN_PORT, CONFIG_DUMP_COMMAND
from meshviz.collect.capture_log import _Capture
from meshviz.collect.discover import (
    PROXY_CONTAINER,
)
from meshviz.collect.errors import CollectError
from meshviz.collect.kube import error_for, status_message
from meshviz.collect.run import _body_text, _first_error, _Run
from meshviz.engine.api import (
    parse_config_dump,
    redact_config_dump_text,
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
