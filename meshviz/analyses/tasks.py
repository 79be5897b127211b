"""Celery tasks: run an analysis.

With CELERY_BROKER_URL empty (the embedded default) settings make tasks eager: `enqueue` runs the
analysis in-process once the surrounding transaction commits.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from .models import Analysis
from .services import run_analysis

logger = logging.getLogger(__name__)

#: Errors worth retrying: the database (or the connection to it) is briefly unavailable.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)


@shared_task(
    bind=True,
    name="meshviz.analyses.analyse",
    # Acknowledge after the run, and requeue when the worker dies mid-run: a killed worker's task is redelivered.
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=True,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=5,
)
def analyse(self: object, analysis_id: int, force: bool = False) -> str:
    """Run analysis `analysis_id`; returns what happened (missing, unchanged, done, superseded, failed).

    Idempotent: an analysis that is done with results for its current inputs and engine version is left
    alone unless `force`.
    """
    analysis = Analysis.objects.filter(pk=analysis_id).first()
    if analysis is None:
        logger.warning("analyse: analysis %s does not exist", analysis_id)
        return "missing"
    if not force and analysis.state == Analysis.State.DONE and analysis.results_are_current():
        return "unchanged"
    Analysis.objects.filter(pk=analysis.pk, revision=analysis.revision).update(
        state=Analysis.State.RUNNING, updated=timezone.now()
    )
    try:
        stored = run_analysis(analysis)
    except TRANSIENT_ERRORS:
        raise
    except Exception as exc:
        logger.exception("analyse: analysis %s failed", analysis.slug)
        message = str(exc) or type(exc).__name__
        Analysis.objects.filter(pk=analysis.pk, revision=analysis.revision).update(
            state=Analysis.State.FAILED, error=f"{type(exc).__name__}: {message}", updated=timezone.now()
        )
        return "failed"
    return "done" if stored.state == Analysis.State.DONE else "superseded"


def enqueue(analysis: Analysis, *, force: bool = False) -> None:
    """Queue the analysis once the current transaction commits (at once outside a transaction)."""
    pk = analysis.pk
    transaction.on_commit(lambda: analyse.delay(pk, force=force))
