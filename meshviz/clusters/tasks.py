"""Celery tasks: collect a pod (with progress, timeouts and retries with backoff) and re-collect watched pods.

With CELERY_BROKER_URL empty (the embedded default) tasks run in-process once the transaction commits, and
retries run at once (Celery's eager mode ignores the countdown).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from meshviz.analyses.models import Analysis
from meshviz.collect.errors import CollectError

from . import crypto, steps
from .models import CollectionJob

logger = logging.getLogger(__name__)


class RetryableCollectError(Exception):
    """A retryable CollectError (timeout, unreachable) on an attempt that is not the last: Celery retries it."""

    def __init__(self, error: CollectError) -> None:
        super().__init__(f"{error.kind} at {error.step}: {error.message}")
        self.error = error


@shared_task(
    bind=True,
    name="meshviz.clusters.collect",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(RetryableCollectError,),
    retry_backoff=2,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=None,  # bounded by MESHVIZ_COLLECT_TASK_RETRIES below (a setting, read at run time)
)
def collect(self: Any, job_id: int) -> str:
    """Collect job `job_id`'s pod and create its analysis; returns missing, unchanged, done or failed.

    A retryable CollectError is retried up to MESHVIZ_COLLECT_TASK_RETRIES times: by a worker through Celery's
    autoretry, with exponential backoff (2, 4, 8 ... s, at most 60, jittered); in the embedded eager mode,
    where there is no broker to schedule a later try, at once in the same call (the library has already
    backed off between its own tries). Any other error - or the last retryable one - fails the job with the
    error recorded. The analysis is created only from a complete collection.
    """
    if not self.request.is_eager:
        return attempt(job_id, int(self.request.retries or 0))
    retries = 0
    while True:
        try:
            return attempt(job_id, retries)
        except RetryableCollectError:
            retries += 1


def attempt(job_id: int, retries: int) -> str:
    """One try at collection `job_id` (`retries` tries came before); raises RetryableCollectError to be retried."""
    job = CollectionJob.objects.select_related("cluster", "owner").filter(pk=job_id).first()
    if job is None:
        logger.warning("collect: collection %s does not exist", job_id)
        return "missing"
    if job.state in (CollectionJob.State.DONE, CollectionJob.State.FAILED):
        return "unchanged"
    CollectionJob.objects.filter(pk=job.pk).update(
        state=CollectionJob.State.RUNNING, attempts=retries + 1, updated=timezone.now()
    )
    try:
        crypto.require_key()
        collection = steps.run_collection(job)
    except CollectError as exc:
        limit = int(settings.MESHVIZ_COLLECT_TASK_RETRIES)
        if exc.retryable and retries < limit:
            steps.progress_recorder(job.pk)(
                "retry", "retry", f"attempt {retries + 1} of {limit + 1} failed ({exc.kind}: {exc.message}); retrying"
            )
            logger.info("collect: collection %s attempt %d failed (%s); retrying", job.pk, retries + 1, exc.kind)
            raise RetryableCollectError(exc) from None
        error = exc.to_dict()
        if exc.retryable:
            error["message"] = f"{exc.message} (gave up after {retries + 1} attempts)"
        logger.info("collect: collection %s failed: %s at %s", job.pk, exc.kind, exc.step)
        steps.fail(job.pk, error)
        return "failed"
    except crypto.EncryptionKeyMissing as exc:
        steps.fail(job.pk, {"kind": "configuration", "step": "connect", "message": str(exc), "retryable": False})
        return "failed"
    except Exception as exc:
        logger.exception("collect: collection %s failed unexpectedly", job.pk)
        steps.fail(
            job.pk,
            {
                "kind": "internal",
                "step": "collect",
                "message": f"unexpected error: {type(exc).__name__}: {str(exc)[:300]}",
                "retryable": False,
            },
        )
        return "failed"
    analysis = steps.finish_collection(job, collection)
    if analysis is None:
        return "failed"
    if job.previous_analysis_id is not None:
        # a re-collection: flag the verdicts that changed once the new analysis has its results
        transaction.on_commit(lambda: compare_verdicts.delay(job.pk))
    return "done"


@shared_task(bind=True, name="meshviz.clusters.compare_verdicts", max_retries=60)
def compare_verdicts(self: Any, job_id: int) -> str:
    """Once a re-collection's analysis and the previous one are done, store their verdict changes (and flag a
    watched pod). Queued after the analysis; polls every 5 s (up to 5 min) while an analysis is still running;
    the beat task compares whatever is left."""
    job = CollectionJob.objects.filter(pk=job_id).first()
    if job is None or job.previous_analysis_id is None or job.analysis_id is None:
        return "nothing to compare"
    changes = steps.compare_with_previous(job)
    if changes is not None:
        return f"{len(changes)} change(s)"
    pending = Analysis.objects.filter(
        pk__in=[job.analysis_id, job.previous_analysis_id], state__in=[Analysis.State.QUEUED, Analysis.State.RUNNING]
    ).exists()
    if pending and not self.request.is_eager:
        raise self.retry(countdown=5)
    return "not comparable yet"


@shared_task(name="meshviz.clusters.recollect_watched_pods")
def recollect_watched_pods() -> dict[str, int]:
    """The beat task: flag verdict changes of finished re-collections, then start the due collections."""
    compared = steps.compare_pending()
    started = steps.recollect_due()
    for job in started:
        queue_collection(job)
    return {"compared": compared, "started": len(started)}


def queue_collection(job: CollectionJob) -> None:
    """Queue `collect` for the job once the transaction commits."""
    pk = job.pk
    transaction.on_commit(lambda: collect.delay(pk))


@shared_task(
    name="meshviz.clusters.check", acks_late=True, reject_on_worker_lost=True, soft_time_limit=90, time_limit=120
)
def check(cluster_id: int) -> str:
    """Refresh what a connection may do (capabilities), in a worker; the result or error is stored on it."""
    from .models import Cluster

    cluster = Cluster.objects.select_related("owner").filter(pk=cluster_id).first()
    if cluster is None:
        return "missing"
    steps.check_cluster(cluster)
    return "failed" if cluster.check_error else "checked"


def queue_check(cluster: Any) -> None:
    """Queue `check` once the transaction commits; with the broker down the check waits for the next request."""
    from kombu.exceptions import OperationalError as BrokerError

    pk = cluster.pk

    def send() -> None:
        try:
            check.apply_async((pk,), retry=False)
        except (BrokerError, OSError) as exc:
            logger.warning("clusters: could not queue the check of cluster %s: %s", pk, exc)

    transaction.on_commit(send)


@shared_task(name="meshviz.clusters.browse", soft_time_limit=60, time_limit=90)
def browse(cluster_id: int, key: str) -> str:
    """List a cluster's namespaces or a namespace's pods (`steps.browse`) and store the result or the error."""
    from .models import BrowseResult, Cluster

    cluster = Cluster.objects.select_related("owner").filter(pk=cluster_id).first()
    if cluster is None:
        return "missing"
    try:
        stored = BrowseResult.objects.create(cluster=cluster, key=key, result=steps.list_now(cluster, key))
        outcome = "listed"
    except CollectError as exc:
        stored = BrowseResult.objects.create(cluster=cluster, key=key, error=exc.to_dict())
        outcome = "failed"
    BrowseResult.objects.filter(cluster=cluster, key=key, created__lt=stored.created).delete()
    return outcome
