"""Live collection, request side: create connections, browse through workers, queue collections.

Everything that talks to a cluster runs in a worker (meshviz.clusters.tasks -> meshviz.clusters.steps); this module
only stores and queues.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from meshviz.collect.errors import CollectError

from . import crypto, netguard, tasks
from .connect import InClusterForbidden, KubeconfigInvalid, _contexts_of, may_use_in_cluster, server_of
from .models import Cluster, CollectionJob, WatchedPod
from .steps import check_cluster, new_collection_job


def create_cluster(
    *, owner: Any, name: str, in_cluster: bool, kubeconfig: str = "", context: str = "", check: bool = True
) -> Cluster:
    """Store a connection (the kubeconfig encrypted) and, with `check`, check what it may do at once.

    Web requests pass `check=False` and queue `tasks.check_cluster` instead: no Kubernetes call is made in a
    web request.  Raises InClusterForbidden when `owner` may not use the service account, KubeconfigInvalid for
    an unusable kubeconfig or a refused server address (netguard) and crypto.EncryptionKeyMissing when kubeconfigs
    cannot be encrypted; nothing is stored then.
    """
    crypto.require_key()
    if in_cluster:
        if not may_use_in_cluster(owner):
            raise InClusterForbidden(
                "only staff (or members of the group the operator set in MESHVIZ_IN_CLUSTER_GROUP) may use "
                "meshviz's own service account; upload a kubeconfig instead"
            )
        cluster = Cluster.objects.create(owner=owner, name=name, kind=Cluster.Kind.IN_CLUSTER, context="")
    else:
        names = _contexts_of(kubeconfig, context)
        try:
            netguard.check_literal(server_of(kubeconfig, context))
        except CollectError as exc:
            raise KubeconfigInvalid(exc.message) from None
        cluster = Cluster.objects.create(
            owner=owner,
            name=name,
            kind=Cluster.Kind.KUBECONFIG,
            kubeconfig_encrypted=crypto.encrypt(kubeconfig),
            context=context,
            contexts=names,
        )
    if check:
        check_cluster(cluster)
    return cluster


class BrowsePending(Exception):
    """A worker is listing it: ask again in a moment."""


#: How long a listing is shown before a fresh one is queued.
BROWSE_TTL_SECONDS = 30


def browse(cluster: Cluster, key: str) -> Any:
    """The latest listing for `key` (younger than BROWSE_TTL_SECONDS), else queue one and raise BrowsePending.

    With the embedded eager mode (no broker) the listing runs at once, in-process, like every task there.
    """
    from .models import BrowseResult

    def latest() -> BrowseResult | None:
        since = timezone.now() - timedelta(seconds=BROWSE_TTL_SECONDS)
        return BrowseResult.objects.filter(cluster=cluster, key=key, created__gte=since).first()

    found = latest()
    if found is None:
        tasks.browse.delay(cluster.pk, key)
        found = latest()  # eager mode: it ran in place
        if found is None:
            raise BrowsePending(key)
    if found.error:
        raise CollectError.from_dict(found.error)
    return found.result


def namespaces(cluster: Cluster) -> list[str]:
    """The cluster's namespaces as a worker last listed them; raises CollectError or BrowsePending."""
    return list(browse(cluster, "namespaces"))


def pods(cluster: Cluster, namespace: str, *, sidecar_only: bool = True) -> list[dict[str, Any]]:
    """The namespace's pods (with an Istio sidecar unless `sidecar_only` is false) as a worker last listed them;
    raises CollectError or BrowsePending."""
    return list(browse(cluster, f"pods:{namespace}:{int(sidecar_only)}"))


def rotate_kubeconfigs() -> int:
    """Re-encrypt every stored kubeconfig with the newest key; returns how many were rewritten."""
    count = 0
    for cluster in Cluster.objects.exclude(kubeconfig_encrypted="").only("pk", "kubeconfig_encrypted"):
        Cluster.objects.filter(pk=cluster.pk).update(kubeconfig_encrypted=crypto.rotate(cluster.kubeconfig_encrypted))
        count += 1
    return count


def start_collection(
    *, owner: Any, cluster: Cluster, namespace: str, pod: str, watched: WatchedPod | None = None
) -> CollectionJob:
    """Queue a collection (the Celery task starts once the transaction commits).

    Refused (crypto.EncryptionKeyMissing) when DEBUG is off and MESHVIZ_ENCRYPTION_KEY is unset.
    """
    job = new_collection_job(owner=owner, cluster=cluster, namespace=namespace, pod=pod, watched=watched)
    tasks.queue_collection(job)
    return job
