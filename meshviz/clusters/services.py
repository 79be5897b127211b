"""Live collection glue: cluster connections, browsing, collection jobs and watched pods.

The Kubernetes side is meshviz.collect (the library); the analysis side is meshviz.analyses.services, used
exactly as an upload uses it: `validate_evidence`, then `create_analysis`, then `tasks.enqueue`.
Nothing here logs a kubeconfig, a token or collected evidence.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from meshviz.analyses import services as analyses
from meshviz.analyses.models import Analysis
from meshviz.analyses.tasks import enqueue as enqueue_analysis
from meshviz.collect import kube
from meshviz.collect.collect import collect_pod
from meshviz.collect.discover import list_namespaces, list_pods
from meshviz.collect.errors import CollectError

from . import crypto, netguard
from .models import Cluster, CollectionJob, WatchedPod

logger = logging.getLogger(__name__)


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


def check_cluster(cluster: Cluster) -> Cluster:
    """Refresh the connection's capabilities (what its credentials may do); errors are stored, not raised."""
    try:
        with connected(cluster) as api:
            caps = kube.capabilities(api)
    except CollectError as exc:
        cluster.check_error = exc.to_dict()
    else:
        cluster.capabilities = {str(k): bool(v) for k, v in caps.items()}
        cluster.check_error = None
    cluster.checked = timezone.now()
    cluster.save(update_fields=["capabilities", "check_error", "checked"])
    return cluster


def list_now(cluster: Cluster, key: str) -> Any:
    """Ask the cluster (in a worker: `tasks.browse`) for what `key` names; raises CollectError."""
    with connected(cluster, timeout=min(BROWSE_TIMEOUT, float(settings.MESHVIZ_KUBE_TIMEOUT))) as api:
        if key == "namespaces":
            return list(list_namespaces(api))
        _, namespace, sidecar_only = key.split(":")
        return [p.to_dict() for p in list_pods(api, namespace, sidecar_only=sidecar_only == "1")]


class BrowsePending(Exception):
    """A worker is listing it: ask again in a moment."""


#: How long a listing is shown before a fresh one is queued.
BROWSE_TTL_SECONDS = 30


def browse(cluster: Cluster, key: str) -> Any:
    """The latest listing for `key` (younger than BROWSE_TTL_SECONDS), else queue one and raise BrowsePending.

    With the embedded eager mode (no broker) the listing runs at once, in-process, like every task there.
    """
    from .models import BrowseResult
    from .tasks import browse as browse_task

    def latest() -> BrowseResult | None:
        since = timezone.now() - timedelta(seconds=BROWSE_TTL_SECONDS)
        return BrowseResult.objects.filter(cluster=cluster, key=key, created__gte=since).first()

    found = latest()
    if found is None:
        browse_task.delay(cluster.pk, key)
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


# --------------------------------------------------------------------------
# collections
# --------------------------------------------------------------------------


def previous_analysis(owner: Any, cluster: Cluster, namespace: str, pod: str) -> Analysis | None:
    """The analysis of this pod's latest successful collection, if any."""
    job = (
        CollectionJob.objects.filter(owner=owner, cluster=cluster, namespace=namespace, pod=pod, analysis__isnull=False)
        .select_related("analysis")
        .order_by("-created")
        .first()
    )
    return job.analysis if job else None


def start_collection(
    *, owner: Any, cluster: Cluster, namespace: str, pod: str, watched: WatchedPod | None = None
) -> CollectionJob:
    """Queue a collection (the Celery task starts once the transaction commits).

    Refused (crypto.EncryptionKeyMissing) when DEBUG is off and MESHVIZ_ENCRYPTION_KEY is unset.
    """
    crypto.require_key()
    from .tasks import collect  # the task module imports this one

    job = CollectionJob.objects.create(
        owner=owner,
        cluster=cluster,
        namespace=namespace,
        pod=pod,
        watched=watched,
        previous_analysis=previous_analysis(owner, cluster, namespace, pod),
    )
    pk = job.pk
    transaction.on_commit(lambda: collect.delay(pk))
    return job


def progress_recorder(job_id: int) -> Callable[[str, str, str], None]:
    """A `progress(step, state, detail)` callback that stores each step on the job as it happens."""

    def progress(step: str, state: str, detail: str = "") -> None:
        job = CollectionJob.objects.filter(pk=job_id).only("steps").first()
        if job is None:
            return
        steps = list(job.steps or [])
        entry = {"step": str(step), "state": str(state), "detail": str(detail or ""), "at": timezone.now().isoformat()}
        for i in range(len(steps) - 1, -1, -1):
            if steps[i]["step"] == entry["step"]:
                steps[i] = entry
                break
        else:
            steps.append(entry)
        CollectionJob.objects.filter(pk=job_id).update(steps=steps, updated=timezone.now())

    return progress


def fail(job_id: int, error: dict[str, Any]) -> None:
    CollectionJob.objects.filter(pk=job_id).update(
        state=CollectionJob.State.FAILED, error=error, finished=timezone.now(), updated=timezone.now()
    )


def run_collection(job: CollectionJob) -> Any:
    """Collect the pod through the Kubernetes API; returns the complete Collection or raises CollectError."""
    with connected(job.cluster) as api:
        return collect_pod(
            api,
            job.namespace,
            job.pod,
            progress=progress_recorder(job.pk),
            timeout=float(settings.MESHVIZ_COLLECT_TIMEOUT),
            retries=int(settings.MESHVIZ_COLLECT_RETRIES),
        )


def finish_collection(job: CollectionJob, collection: Any) -> Analysis | None:
    """Create the analysis from a complete collection, exactly as an upload would, in one transaction.

    Evidence the engine cannot parse fails the job with the engine's errors (line, column) and creates
    nothing. Returns the analysis, or None when the job failed.
    """
    evidence: dict[str, str] = {
        "iptables": collection.iptables or "",
        "ip_rule": collection.ip_rule or "",
        "ip_route": collection.ip_route or "",
        "sysctl": collection.sysctl or "",
        "envoy_config_dump": collection.envoy_config_dump or "",
        "nftables": getattr(collection, "nftables", "") or "",
    }
    errors, warnings = analyses.validate_evidence(pod_ip=collection.pod_ip, **evidence)
    notes = [str(n) for n in (collection.notes or [])]
    reconstructed = bool(collection.reconstructed)
    if errors:
        fail(
            job.pk,
            {
                "kind": "bad_output",
                "step": "validate",
                "message": "the collected evidence does not parse; no analysis was created",
                "retryable": False,
                "errors": errors,
            },
        )
        return None
    origin = Analysis.Origin.RECONSTRUCTED if reconstructed else Analysis.Origin.CAPTURED
    origin_notes = [
        f"collected from {job.cluster.name}: pod {job.namespace}/{job.pod} (collection {job.pk})",
        *notes,
    ]
    with transaction.atomic():
        current = CollectionJob.objects.select_for_update().get(pk=job.pk)
        if current.analysis_id is not None:  # a redelivered task: the analysis already exists
            return current.analysis
        analysis = analyses.create_analysis(
            iptables=evidence["iptables"],
            ip_rule=evidence["ip_rule"],
            ip_route=evidence["ip_route"],
            sysctl=evidence["sysctl"],
            envoy_config_dump=evidence["envoy_config_dump"],
            nftables=evidence["nftables"],
            pod_ip=str(collection.pod_ip),
            pod_name=collection.pod_name or job.pod,
            namespace=collection.namespace or job.namespace,
            proxy_uid=collection.proxy_uid,
            proxy_gid=collection.proxy_gid,
            labels={str(k): str(v) for k, v in (collection.labels or {}).items()},
            app_ports=[int(p) for p in (collection.app_ports or [])],
            warnings=warnings,
            owner=job.owner,
            origin=origin,
            origin_notes=origin_notes,
            derived_from=current.previous_analysis,
        )
        current.analysis = analysis
        current.state = CollectionJob.State.DONE
        current.reconstructed = reconstructed
        current.notes = notes
        current.error = None
        current.finished = timezone.now()
        current.save(update_fields=["analysis", "state", "reconstructed", "notes", "error", "finished", "updated"])
        enqueue_analysis(analysis)
        if current.previous_analysis_id is not None:
            from .tasks import compare_verdicts  # the task module imports this one

            transaction.on_commit(lambda: compare_verdicts.delay(current.pk))
    logger.info(
        "collection %s of %s/%s: %s; analysis %s queued",
        job.pk,
        job.namespace,
        job.pod,
        "reconstructed, not captured" if reconstructed else "captured",
        analysis.slug,
    )
    return analysis


# --------------------------------------------------------------------------
# verdict changes (re-collection, watched pods)
# --------------------------------------------------------------------------


def verdict_changes(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """Stories whose verdict differs between two analyses' results.

    Stories are paired by their connection when both analyses simulate the same connections, else by
    position (`results["stories"][i]`); a story present on one side only is a change (null on the other).
    """
    old = list(before.get("stories") or [])
    new = list(after.get("stories") or [])
    old_keys = [_conn_key(s) for s in old]
    new_keys = [_conn_key(s) for s in new]
    pairs: list[tuple[dict[str, Any] | None, dict[str, Any] | None]]
    if sorted(old_keys) == sorted(new_keys):
        by_key = dict(zip(old_keys, old, strict=True))
        pairs = [(by_key[k], s) for k, s in zip(new_keys, new, strict=True)]
    else:
        pairs = [
            (old[i] if i < len(old) else None, new[i] if i < len(new) else None) for i in range(max(len(old), len(new)))
        ]
    changes: list[dict[str, Any]] = []
    for prev, cur in pairs:
        if prev is not None and cur is not None and prev.get("verdict") == cur.get("verdict"):
            continue
        changes.append(
            {
                "connection": (cur or prev or {}).get("connection"),
                "before": prev.get("verdict") if prev else None,
                "after": cur.get("verdict") if cur else None,
                "before_line": prev.get("verdict_line", "") if prev else "",
                "after_line": cur.get("verdict_line", "") if cur else "",
            }
        )
    return changes


def _conn_key(story: dict[str, Any]) -> str:
    conn = story.get("connection") or {}
    return repr(sorted((str(k), str(v)) for k, v in conn.items()))


def compare_with_previous(job: CollectionJob) -> list[dict[str, Any]] | None:
    """Once the job's analysis and the previous one are done, store (and return) their verdict changes.

    Returns None while there is nothing to compare yet (no previous analysis, or one still running). For a
    watched pod, a change sets `verdict_changed` with the details.
    """
    if job.verdict_changes is not None:
        return list(job.verdict_changes)
    if job.analysis_id is None or job.previous_analysis_id is None:
        return None
    new = Analysis.objects.filter(pk=job.analysis_id).first()
    old = Analysis.objects.filter(pk=job.previous_analysis_id).first()
    if new is None or old is None or not new.results or not old.results:
        return None
    if new.state != Analysis.State.DONE or old.state != Analysis.State.DONE:
        return None
    changes = verdict_changes(old.results, new.results)
    with transaction.atomic():
        CollectionJob.objects.filter(pk=job.pk).update(verdict_changes=changes)
        job.verdict_changes = changes
        if changes and job.watched_id is not None:
            WatchedPod.objects.filter(pk=job.watched_id).update(
                verdict_changed=True,
                last_change={
                    "collection": job.pk,
                    "before": old.slug,
                    "after": new.slug,
                    "changes": changes,
                },
                last_change_at=timezone.now(),
            )
    if changes:
        logger.info(
            "collection %s: %d verdict(s) changed for %s/%s since analysis %s",
            job.pk,
            len(changes),
            job.namespace,
            job.pod,
            old.slug,
        )
    return changes


def compare_pending(owner: Any = None) -> int:
    """Compare every finished re-collection not compared yet (of `owner`, else everyone's); returns how many."""
    jobs = CollectionJob.objects.filter(owner=owner) if owner is not None else CollectionJob.objects.all()
    pending = jobs.filter(
        state=CollectionJob.State.DONE,
        verdict_changes__isnull=True,
        analysis__isnull=False,
        previous_analysis__isnull=False,
        analysis__state=Analysis.State.DONE,
        previous_analysis__state=Analysis.State.DONE,
    )
    count = 0
    for job in pending:
        if compare_with_previous(job) is not None:
            count += 1
    return count


def due_watched_pods(now: Any = None) -> list[WatchedPod]:
    """Enabled watched pods whose interval has passed, with no collection of theirs still under way."""
    now = now or timezone.now()
    busy = CollectionJob.objects.filter(
        watched__isnull=False, state__in=[CollectionJob.State.QUEUED, CollectionJob.State.RUNNING]
    ).values("watched_id")
    candidates = (
        WatchedPod.objects.filter(enabled=True)
        .filter(Q(last_collected__isnull=True) | Q(last_collected__lte=now - timedelta(minutes=1)))
        .exclude(pk__in=busy)
        .select_related("cluster", "owner")
    )
    return [
        w
        for w in candidates
        if w.last_collected is None or w.last_collected <= now - timedelta(minutes=max(1, w.interval_minutes))
    ]


def recollect_due(now: Any = None) -> list[CollectionJob]:
    """Start a collection for every due watched pod (the beat task)."""
    now = now or timezone.now()
    jobs = []
    for watched in due_watched_pods(now):
        # the interval counts from the attempt, so a pod that keeps failing is not retried every tick
        WatchedPod.objects.filter(pk=watched.pk).update(last_collected=now)
        jobs.append(
            start_collection(
                owner=watched.owner,
                cluster=watched.cluster,
                namespace=watched.namespace,
                pod=watched.pod,
                watched=watched,
            )
        )
    return jobs
