"""Connecting to a cluster: an ApiClient from kubeconfig text or the pod's service account, what it may do.

    api = api_client(kubeconfig=yaml_text, context="kind-kind", timeout=10.0)
    contexts(yaml_text)        # ["kind-kind", ...]
    capabilities(api, "default")  # {"list_namespaces": True, "create_pods_exec": False, ...}

The kubeconfig is accepted as text and validated before the official client sees it.  Only credentials
that are *in* the kubeconfig are accepted (a bearer token, client certificate/key data, the CA data):
references to files on the worker (`tokenFile`, `client-certificate`, `certificate-authority`, ...), `exec`
credential plugins and `auth-provider`s are refused, because an uploaded kubeconfig must neither run
programs on the worker nor read its files (e.g. meshviz's own service account token).  Error messages
name the context, cluster, user and field that is wrong, never a value.

Certificate and key data never touch the disk: the official client would write them to temporary files
until the process exits, so they are taken out of the dict first and handed to the client as anonymous
in-memory files (`memfd_create`, `/proc/self/fd/N`), closed when the ApiClient is garbage collected or
closed.  (Where memfd is unavailable they go to a private 0600 file that is removed at the same moment.)

Everything here is synchronous and thread-compatible (one ApiClient per thread/task is the intended use).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import os
import random
import socket
import tempfile
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import urllib3
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from meshviz.collect.errors import CollectError

__all__ = [
    "CAPABILITY_CHECKS",
    "CapabilityCheck",
    "api_client",
    "capabilities",
    "contexts",
]

_TIMEOUT_ATTR: Final = "_meshviz_timeout"

# --------------------------------------------------------------------------
# kubeconfig validation
# --------------------------------------------------------------------------

#: user fields that point at files or run programs on the worker: refused, with the reason.
_REFUSED_USER_FIELDS: Final[dict[str, str]] = {
    "exec": "runs a credential plugin program; meshviz never runs programs from an uploaded kubeconfig",
    "auth-provider": "needs a cloud auth provider plugin; meshviz only accepts a token or client certificate",
    "tokenFile": "reads a file on the worker; put the token itself in `token`",
    "client-certificate": "reads a file on the worker; use `client-certificate-data`",
    "client-key": "reads a file on the worker; use `client-key-data`",
    "username": "basic authentication was removed from Kubernetes (1.19); use a token",
    "password": "basic authentication was removed from Kubernetes (1.19); use a token",
}
_REFUSED_CLUSTER_FIELDS: Final[dict[str, str]] = {
    "certificate-authority": "reads a file on the worker; use `certificate-authority-data`",
}
_B64_FIELDS_USER: Final = ("client-certificate-data", "client-key-data")


def _invalid(message: str) -> CollectError:
    return CollectError("invalid_kubeconfig", "kubeconfig", message)


def _load_yaml(text: str) -> dict[str, Any]:
    if not isinstance(text, str) or not text.strip():
        raise _invalid("the kubeconfig is empty")
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        # Only the problem, never the snippet: the offending line may hold a token.
        raise _invalid(f"not valid YAML{where}: {e.problem or e.context or 'syntax error'}") from None
    except yaml.YAMLError:
        raise _invalid("not valid YAML") from None
    if not isinstance(data, dict):
        raise _invalid(f"the kubeconfig must be a YAML mapping, not {type(data).__name__}")
    return data


def _named(data: Mapping[str, Any], key: str, inner: str) -> dict[str, dict[str, Any]]:
    items = data.get(key)
    if items is None:
        return {}
    if not isinstance(items, list):
        raise _invalid(f"`{key}` must be a list")
    out: dict[str, dict[str, Any]] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise _invalid(f"`{key}[{i}]` has no `name`")
        body = item.get(inner)
        if not isinstance(body, dict):
            raise _invalid(f"{key[:-1]} {item['name']!r} has no `{inner}` mapping")
        out[item["name"]] = body
    return out


def _check_b64(value: object, what: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise _invalid(f"{what} is empty")
    try:
        base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise _invalid(f"{what} is not base64") from None


@dataclass(frozen=True)
class _Selected:
    context: str
    cluster: str
    user: str


def _validate(data: dict[str, Any], context: str | None) -> _Selected:
    clusters = _named(data, "clusters", "cluster")
    users = _named(data, "users", "user")
    ctxs = _named(data, "contexts", "context")
    if not ctxs:
        raise _invalid("no contexts: the kubeconfig needs at least one entry under `contexts`")
    name = context or data.get("current-context")
    if not name:
        raise _invalid(f"no context chosen and no `current-context` set (contexts: {', '.join(sorted(ctxs))})")
    if name not in ctxs:
        raise _invalid(f"context {name!r} is not in the kubeconfig (contexts: {', '.join(sorted(ctxs))})")
    ctx = ctxs[name]
    cluster_name, user_name = ctx.get("cluster"), ctx.get("user")
    if not isinstance(cluster_name, str) or cluster_name not in clusters:
        raise _invalid(f"context {name!r} names cluster {cluster_name!r}, which is not in `clusters`")
    if not isinstance(user_name, str) or user_name not in users:
        raise _invalid(f"context {name!r} names user {user_name!r}, which is not in `users`")
    cluster = clusters[cluster_name]
    server = cluster.get("server")
    if not isinstance(server, str) or not server.startswith(("https://", "http://")):
        raise _invalid(f"cluster {cluster_name!r} has no `server` URL (https://host:port)")
    for key, why in _REFUSED_CLUSTER_FIELDS.items():
        if key in cluster:
            raise _invalid(f"cluster {cluster_name!r}: `{key}` is not accepted: {why}")
    if "certificate-authority-data" in cluster:
        _check_b64(cluster["certificate-authority-data"], f"cluster {cluster_name!r}: `certificate-authority-data`")
    user = users[user_name]
    for key, why in _REFUSED_USER_FIELDS.items():
        if key in user:
            raise _invalid(f"user {user_name!r}: `{key}` is not accepted: {why}")
    for key in _B64_FIELDS_USER:
        if key in user:
            _check_b64(user[key], f"user {user_name!r}: `{key}`")
    if ("client-certificate-data" in user) != ("client-key-data" in user):
        raise _invalid(f"user {user_name!r}: `client-certificate-data` and `client-key-data` go together")
    token = user.get("token")
    if token is not None and (not isinstance(token, str) or not token.strip()):
        raise _invalid(f"user {user_name!r}: `token` is empty")
    if token is None and "client-certificate-data" not in user:
        raise _invalid(
            f"user {user_name!r} has no credentials (`token` or `client-certificate-data`/`client-key-data`)"
        )
    return _Selected(name, cluster_name, user_name)


def contexts(kubeconfig: str) -> list[str]:
    """The context names in a kubeconfig (YAML text), in file order; raises CollectError("invalid_kubeconfig")."""
    data = _load_yaml(kubeconfig)
    return list(_named(data, "contexts", "context"))


# --------------------------------------------------------------------------
# In-memory credential files
# --------------------------------------------------------------------------


class _MemFiles:
    """Anonymous in-memory files (memfd) readable by path until closed."""

    def __init__(self) -> None:
        self._fds: list[int] = []
        self._paths: list[str] = []

    def add(self, name: str, content: bytes) -> str:
        if hasattr(os, "memfd_create"):
            fd = os.memfd_create(f"meshviz-{name}", 0)
            os.write(fd, content)
            self._fds.append(fd)
            return f"/proc/self/fd/{fd}"
        fd, path = tempfile.mkstemp(prefix="meshviz-")  # 0600
        try:
            os.write(fd, content)
        finally:
            os.close(fd)
        self._paths.append(path)
        return path

    def close(self) -> None:
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        for path in self._paths:
            with contextlib.suppress(OSError):
                os.unlink(path)
        self._fds, self._paths = [], []


def _decode(value: str) -> bytes:
    return base64.b64decode(value)


# --------------------------------------------------------------------------
# ApiClient
# --------------------------------------------------------------------------


def api_client(
    *,
    kubeconfig: str | None = None,
    context: str | None = None,
    in_cluster: bool = False,
    timeout: float = 10.0,
) -> k8s.ApiClient:
    """An ApiClient for a kubeconfig given as YAML text (and a context), or for the pod's service account.

    `timeout` is the default per-request timeout the meshviz.collect functions use with this client.
    Raises CollectError("invalid_kubeconfig") naming what is wrong (never a credential's value).
    """
    cfg = k8s.Configuration()
    files = _MemFiles()
    if in_cluster:
        if kubeconfig is not None:
            raise _invalid("give either a kubeconfig or in_cluster=True, not both")
        try:
            k8s_config.load_incluster_config(client_configuration=cfg)
        except ConfigException as e:
            raise CollectError(
                "invalid_kubeconfig",
                "kubeconfig",
                f"not running inside a cluster with a service account: {e}",
            ) from None
    else:
        if kubeconfig is None:
            raise _invalid("no kubeconfig given (and in_cluster is false)")
        data = _load_yaml(kubeconfig)
        selected = _validate(data, context)
        data = copy.deepcopy(data)
        cluster = next(c["cluster"] for c in data["clusters"] if c["name"] == selected.cluster)
        user = next(u["user"] for u in data["users"] if u["name"] == selected.user)
        # Certificate material goes to memory files, not the client's temp files.
        ca = cluster.pop("certificate-authority-data", None)
        cert = user.pop("client-certificate-data", None)
        key = user.pop("client-key-data", None)
        try:
            k8s_config.load_kube_config_from_dict(
                data, context=selected.context, client_configuration=cfg, persist_config=False
            )
        except (ConfigException, ValueError, TypeError, KeyError) as e:
            # The loader's messages name fields, not values; keep only the first line to be safe.
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise _invalid(f"context {selected.context!r}: {first}") from None
        try:
            if ca:
                cfg.ssl_ca_cert = files.add("ca", _decode(ca))
            if cert and key:
                cfg.cert_file = files.add("cert", _decode(cert))
                cfg.key_file = files.add("key", _decode(key))
        except (binascii.Error, ValueError, OSError) as e:
            files.close()
            raise _invalid(
                f"context {selected.context!r}: certificate data cannot be used ({type(e).__name__})"
            ) from None
    # meshviz retries itself (with backoff, never on 4xx): no hidden urllib3 retries.
    cfg.retries = 0
    api = k8s.ApiClient(cfg)
    setattr(api, _TIMEOUT_ATTR, float(timeout))
    finalizer = weakref.finalize(api, files.close)
    original_close = api.close

    def close() -> None:
        original_close()
        finalizer()

    api.close = close  # type: ignore[method-assign]
    return api


def default_timeout(api: k8s.ApiClient) -> float:
    value = getattr(api, _TIMEOUT_ATTR, 10.0)
    return float(value)


# --------------------------------------------------------------------------
# Errors and retries (shared by discover and collect)
# --------------------------------------------------------------------------


def _status_object(e: ApiException) -> dict[str, Any] | None:
    """The answer's Kubernetes `Status` object, or None when the body is not one (then it is never shown)."""
    body = e.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not isinstance(body, str) or not body.strip() or len(body) > 1_000_000:
        return None
    import json

    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if isinstance(data, dict) and data.get("kind") == "Status":
        return data
    return None


def status_message(e: ApiException) -> str:
    """The API server's Status message, else the HTTP status; never the body of an answer that is not a Status
    (whatever answered may not be Kubernetes, and its body must not be reflected)."""
    data = _status_object(e)
    if data is not None and data.get("message"):
        return str(data["message"])[:4000]
    return f"HTTP {e.status}"


#: The one message for every failure to talk to a Kubernetes API server: refused, reset, timed out, not TLS, or an
#: answer that is not from Kubernetes.  One message, so that errors do not tell open ports from closed ones.
UNREACHABLE: Final = (
    "no Kubernetes API server answered at that address (the connection failed or timed out, or what answered "
    "is not a Kubernetes API server)"
)


_NOT_RUNNING_HINTS: Final = (
    "container not found",
    "is not running",
    "is waiting to start",
    "is not valid for pod",
    "containercreating",
    "podinitializing",
)


def is_transient(exc: BaseException) -> bool:
    """5xx and 429 answers, connection resets, timeouts: worth another try."""
    if isinstance(exc, ApiException):
        return exc.status in (429, 500, 502, 503, 504) or exc.status == 0
    return isinstance(
        exc,
        urllib3.exceptions.HTTPError | ConnectionError | socket.timeout | TimeoutError,
    )


def error_for(exc: BaseException, step: str, what: str) -> CollectError:
    """A CollectError for an exception from the client; `what` says what was being done ("read pod x/y")."""
    if isinstance(exc, CollectError):
        return exc
    if isinstance(exc, ApiException) and (exc.status == 0 or _status_object(exc) is None) and exc.status != 401:
        # No Kubernetes Status in the answer: a connection failure or something else listening on that port.
        return CollectError("unreachable", step, f"{what}: {UNREACHABLE}")
    if isinstance(exc, ApiException):
        msg = status_message(exc)
        if exc.status == 401:
            return CollectError("forbidden", step, f"{what}: the cluster rejected the credentials (401): {msg}")
        if exc.status == 403:
            return CollectError("forbidden", step, f"{what}: forbidden (403): {msg}")
        if exc.status == 404:
            return CollectError("not_found", step, f"{what}: not found (404): {msg}")
        if exc.status in (400, 409) and any(h in msg.lower() for h in _NOT_RUNNING_HINTS):
            return CollectError("container_not_running", step, f"{what}: {msg}")
        if exc.status == 422:
            return CollectError("forbidden", step, f"{what}: rejected by the API server (422): {msg}")
        if exc.status == 0:
            return CollectError("unreachable", step, f"{what}: {exc.reason}")
        if exc.status >= 500 or exc.status == 429:
            return CollectError("unreachable", step, f"{what}: the API server kept failing ({exc.status}): {msg}")
        return CollectError("bad_output", step, f"{what}: unexpected answer {exc.status}: {msg}", retryable=False)
    if isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | OSError | socket.timeout | TimeoutError):
        return CollectError("unreachable", step, f"{what}: {UNREACHABLE}")
    return CollectError("bad_output", step, f"{what}: {type(exc).__name__}: {exc}", retryable=False)


T = TypeVar("T")


@dataclass
class Retry:
    """Exponential backoff for transient failures: `attempts` tries in all, `base` * 2**n seconds (+ jitter)."""

    attempts: int = 4
    base: float = 0.25
    deadline: float | None = None  # time.monotonic() after which no new attempt starts
    sleep: Callable[[float], None] = time.sleep

    def call(self, fn: Callable[[], T], step: str, what: str, on_retry: Callable[[str], None] | None = None) -> T:
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn()
            except CollectError:
                raise
            except Exception as exc:
                if not is_transient(exc) or attempt >= self.attempts:
                    raise error_for(exc, step, what) from None
                delay = self.base * (2 ** (attempt - 1)) * (1 + random.random() * 0.2)
                if self.deadline is not None and time.monotonic() + delay >= self.deadline:
                    raise error_for(exc, step, what) from None
                if on_retry is not None:
                    on_retry(f"{what}: {error_for(exc, step, what).message}; retrying in {delay:.2f}s")
                self.sleep(delay)


def get_json(fn: Callable[..., Any], *args: Any, timeout: float, **kwargs: Any) -> Any:
    """Call a generated API method and return the response's JSON as plain data (no model objects)."""
    import json

    resp = fn(*args, _preload_content=False, _request_timeout=timeout, **kwargs)
    data = resp.data
    try:
        return json.loads(data)
    except ValueError as e:
        raise CollectError(
            "bad_output", "api", f"the API server answered with something that is not JSON: {e}"
        ) from None


# --------------------------------------------------------------------------
# Capabilities
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class CapabilityCheck:
    key: str
    verb: str
    resource: str
    subresource: str
    namespaced: bool
    needed_for: str


#: What meshviz asks the cluster for, one SelfSubjectAccessReview each (deploy/rbac.yaml grants exactly these).
CAPABILITY_CHECKS: Final[tuple[CapabilityCheck, ...]] = (
    CapabilityCheck("list_namespaces", "list", "namespaces", "", False, "browse namespaces"),
    CapabilityCheck("list_pods", "list", "pods", "", True, "browse pods"),
    CapabilityCheck("get_pods", "get", "pods", "", True, "read the pod (metadata, istio-init arguments)"),
    CapabilityCheck("create_pods_exec", "create", "pods", "exec", True, "Envoy config dump via pilot-agent"),
    CapabilityCheck(
        "patch_pods_ephemeralcontainers",
        "patch",
        "pods",
        "ephemeralcontainers",
        True,
        "capture iptables/ip rule/ip route/sysctls with an ephemeral container",
    ),
    CapabilityCheck("get_pods_log", "get", "pods", "log", True, "read the capture container's output"),
    CapabilityCheck("get_pods_proxy", "get", "pods", "proxy", True, "Envoy config dump via the admin port (fallback)"),
)


def capabilities(api: k8s.ApiClient, namespace: str | None = None) -> dict[str, bool]:
    """What this connection may do (`CAPABILITY_CHECKS` keys -> allowed), from SelfSubjectAccessReviews.

    Namespaced checks are asked for `namespace` (None: all namespaces).  Raises CollectError when the
    cluster cannot be asked (unreachable, credentials rejected).
    """
    authz = k8s.AuthorizationV1Api(api)
    timeout = default_timeout(api)
    retry = Retry(attempts=3)
    result: dict[str, bool] = {}
    for check in CAPABILITY_CHECKS:
        attrs: dict[str, Any] = {"verb": check.verb, "resource": check.resource, "group": ""}
        if check.subresource:
            attrs["subresource"] = check.subresource
        if check.namespaced and namespace:
            attrs["namespace"] = namespace
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attrs},
        }

        def ask(body: dict[str, Any] = body) -> Any:
            return get_json(authz.create_self_subject_access_review, body, timeout=timeout)

        answer = retry.call(ask, "capabilities", f"access review for {check.verb} {check.resource}")
        status = answer.get("status") if isinstance(answer, dict) else None
        result[check.key] = bool(isinstance(status, dict) and status.get("allowed"))
    return result
