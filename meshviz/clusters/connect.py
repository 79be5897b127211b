"""Connecting to a cluster: who may use which credentials, the server's address checked, the API client.

Nothing here logs a kubeconfig or a token.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings

from meshviz.collect import kube
from meshviz.collect.errors import CollectError

from . import crypto, netguard
from .models import Cluster


class KubeconfigInvalid(ValueError):
    """The uploaded kubeconfig cannot be used (not YAML, no contexts, unknown context)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --------------------------------------------------------------------------
# clusters
# --------------------------------------------------------------------------


def _contexts_of(kubeconfig: str, context: str) -> list[str]:
    try:
        names = list(kube.contexts(kubeconfig))
    except CollectError as exc:
        raise KubeconfigInvalid(exc.message) from None
    except Exception as exc:  # the library's parser failed in a way it did not classify
        raise KubeconfigInvalid(f"not a kubeconfig ({type(exc).__name__})") from None
    if not names:
        raise KubeconfigInvalid("the kubeconfig defines no contexts")
    if context and context not in names:
        raise KubeconfigInvalid(f"no context {context!r} in the kubeconfig (it has: {', '.join(names)})")
    # The library validates the chosen context fully (server, credentials, refused file/exec references)
    # when it builds a client; nothing is contacted.
    try:
        kube.api_client(kubeconfig=kubeconfig, context=context or None, in_cluster=False, timeout=1.0).close()
    except CollectError as exc:
        raise KubeconfigInvalid(exc.message) from None
    return names


class InClusterForbidden(PermissionError):
    """Only staff (or members of MESHVIZ_IN_CLUSTER_GROUP) may use meshviz's own service account."""


def may_use_in_cluster(user: Any) -> bool:
    """meshviz's service account can exec into pods: only staff and the operator-configured group may use it."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if user.is_staff or user.is_superuser:
        return True
    group = settings.MESHVIZ_IN_CLUSTER_GROUP
    return bool(group) and user.groups.filter(name=group).exists()


def server_of(kubeconfig: str, context: str) -> str:
    """The API server URL the kubeconfig's chosen context names (the kubeconfig already validated)."""
    data = kube._load_yaml(kubeconfig)
    selected = kube._validate(data, context or None)
    return str(next(c["cluster"]["server"] for c in data["clusters"] if c["name"] == selected.cluster))


#: The longest a single Kubernetes API request may take (browsing, capability checks; collection requests are
#: also bounded by what is left of MESHVIZ_COLLECT_TIMEOUT).
REQUEST_TIMEOUT = 30.0


def api_for(cluster: Cluster, *, timeout: float | None = None) -> Any:
    """A Kubernetes API client for the connection (the kubeconfig decrypted in memory only).

    The server's addresses are checked (netguard) before any connection; in-cluster use is re-checked against the
    owner's rights, which may have been withdrawn since the connection was made.
    """
    if timeout is None:
        timeout = min(REQUEST_TIMEOUT, float(settings.MESHVIZ_KUBE_TIMEOUT), float(settings.MESHVIZ_COLLECT_TIMEOUT))
    if cluster.kind == Cluster.Kind.IN_CLUSTER:
        if not may_use_in_cluster(cluster.owner):
            raise CollectError(
                "forbidden", "kubeconfig", "the owner may no longer use meshviz's own service account", retryable=False
            )
        return kube.api_client(kubeconfig=None, context=None, in_cluster=True, timeout=float(timeout))
    try:
        kubeconfig = crypto.decrypt(cluster.kubeconfig_encrypted)
    except crypto.DecryptionFailed as exc:
        raise CollectError("invalid_kubeconfig", "kubeconfig", str(exc), retryable=False) from None
    netguard.check_resolved(server_of(kubeconfig, cluster.context))
    return kube.api_client(
        kubeconfig=kubeconfig, context=cluster.context or None, in_cluster=False, timeout=float(timeout)
    )


#: Browsing (namespaces, pods) is the one place a web request talks to a cluster: 5 s per request, and the
#: library's at most 4 tries with backoff, stay under gunicorn's 30 s.
BROWSE_TIMEOUT = 5.0


@contextmanager
def connected(cluster: Cluster, timeout: float | None = None) -> Iterator[Any]:
    """`api_for(cluster)`, closed afterwards (its connection pool and in-memory credential files)."""
    api = api_for(cluster, timeout=timeout)
    try:
        yield api
    finally:
        api.close()
