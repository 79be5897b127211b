"""The work live collection does in workers (called by meshviz.clusters.tasks; never queues a task itself).

Checks, listings, collection jobs and watched pods' verdict changes. The Kubernetes side is meshviz.collect (the
library); the analysis side is meshviz.analyses.services, used exactly as an upload uses it. Nothing here logs a
kubeconfig, a token or collected evidence.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
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

from . import crypto
from .connect import BROWSE_TIMEOUT, connected
from .models import Cluster, CollectionJob, WatchedPod

logger = logging.getLogger(__name__)


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


def new_collection_job(
    *, owner: Any, cluster: Cluster, namespace: str, pod: str, watched: WatchedPod | None = None
) -> CollectionJob:
    """A queued collection job for the pod, remembering the pod's previous analysis (to compare verdicts).

    Refused (crypto.EncryptionKeyMissing) when DEBUG is off and MESHVIZ_ENCRYPTION_KEY is unset.
    """
    crypto.require_key()
    return CollectionJob.objects.create(
        owner=owner,
        cluster=cluster,
        namespace=namespace,
        pod=pod,
        watched=watched,
        previous_analysis=previous_analysis(owner, cluster, namespace, pod),
    )


def recollect_due(now: Any = None) -> list[CollectionJob]:
    """A new collection job for every due watched pod (the beat task queues them)."""
    now = now or timezone.now()
    jobs = []
    for watched in due_watched_pods(now):
        # the interval counts from the attempt, so a pod that keeps failing is not retried every tick
        WatchedPod.objects.filter(pk=watched.pk).update(last_collected=now)
        jobs.append(
            new_collection_job(
                owner=watched.owner,
                cluster=watched.cluster,
                namespace=watched.namespace,
                pod=watched.pod,
                watched=watched,
            )
        )
    return jobs
