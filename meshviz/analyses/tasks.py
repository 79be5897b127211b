"""Celery tasks: run an analysis, and the two beat tasks that make sure none is lost.

With CELERY_BROKER_URL empty (the embedded default) settings make tasks eager: `enqueue` runs the
analysis in-process once the surrounding transaction commits.

Nothing is lost when parts fail:

* `enqueue` dispatches after the transaction commits; when the broker is unreachable the analysis stays `queued`
  with `dispatched_at` unset (the client still gets its slug) and `redispatch_queued` (beat) sends it later.
* A running analysis refreshes `heartbeat`; `reap_stale_running` (beat) requeues one whose heartbeat stopped (its
  worker was killed, ran out of memory or hit the hard time limit), and fails it with the reason after
  MESHVIZ_TASK_MAX_ATTEMPTS runs.
* Only transient errors are retried (the database unreachable, a deadlock); a result too large to store, an engine
  error, the soft time limit, running out of memory are failures with their reason.
"""

from __future__ import annotations

import logging
import threading
from contextlib import nullcontext
from datetime import timedelta
from typing import Any

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from . import gate, progress
from .models import Analysis
from .services import ResultTooLarge, run_analysis

logger = logging.getLogger(__name__)

#: SQLSTATE classes and codes that mean "try again later": connection failures (08), the server shutting down or
#: not accepting connections yet (57P0x), too many connections (53300), serialisation failures and deadlocks.
TRANSIENT_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300", "40001", "40P01")


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` is worth retrying: the database is briefly unavailable, not the data at fault.

    PostgreSQL's "total size of jsonb ... exceeds the maximum" and "integer out of range" are database errors too,
    but retrying them only blocks the queue: they are failures.
    """
    if isinstance(exc, InterfaceError):
        return True
    if not isinstance(exc, OperationalError):
        return False
    cause = exc.__cause__
    sqlstate = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
    if sqlstate:
        return any(str(sqlstate).startswith(code) for code in TRANSIENT_SQLSTATES)
    text = str(exc).lower()
    return any(
        hint in text
        for hint in ("database is locked", "could not connect", "connection refused", "server closed", "timeout")
    )


class _Heartbeat:
    """Refreshes `Analysis.heartbeat` every MESHVIZ_HEARTBEAT_SECONDS from a thread while the analysis runs."""

    def __init__(self, pk: int) -> None:
        self.pk = pk
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"heartbeat-{pk}", daemon=True)

    def _run(self) -> None:
        interval = float(settings.MESHVIZ_HEARTBEAT_SECONDS)
        try:
            while not self.stop.wait(interval):
                Analysis.objects.filter(pk=self.pk, state=Analysis.State.RUNNING).update(heartbeat=timezone.now())
        except DatabaseError:
            logger.warning("analyse: heartbeat of analysis %s could not be written", self.pk)
        finally:
            connection.close()  # this thread's own database connection

    def __enter__(self) -> _Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


def _fail(analysis: Analysis, message: str) -> str:
    Analysis.objects.filter(pk=analysis.pk, revision=analysis.revision).update(
        state=Analysis.State.FAILED, error=message, heartbeat=None, updated=timezone.now()
    )
    return "failed"


@shared_task(
    bind=True,
    name="meshviz.analyses.analyse",
    # Acknowledge after the run, and requeue when the worker dies mid-run: a killed worker's task is redelivered.
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=5,
)
def analyse(self: Any, analysis_id: int, force: bool = False) -> str:
    """Run analysis `analysis_id`; returns what happened (missing, unchanged, done, superseded, failed, retrying).

    Idempotent: an analysis that is done with results for its current inputs and engine version is left
    alone unless `force`.  Bounded by the task's soft and hard time limits (CELERY_TASK_SOFT_TIME_LIMIT,
    CELERY_TASK_TIME_LIMIT) and the worker's memory limit.
    """
    analysis = Analysis.objects.filter(pk=analysis_id).first()
    if analysis is None:
        logger.warning("analyse: analysis %s does not exist", analysis_id)
        return "missing"
    if not force and analysis.state == Analysis.State.DONE and analysis.results_are_current():
        return "unchanged"
    attempts = analysis.attempts + 1
    limit = int(settings.MESHVIZ_TASK_MAX_ATTEMPTS)
    if attempts > limit:
        return _fail(
            analysis,
            f"WorkerLost: the analysis was started {limit} times and its worker stopped every time (killed, out of "
            f"memory or over the {settings.CELERY_TASK_TIME_LIMIT} s time limit)",
        )
    Analysis.objects.filter(pk=analysis.pk, revision=analysis.revision).update(
        state=Analysis.State.RUNNING, attempts=attempts, heartbeat=timezone.now(), updated=timezone.now()
    )
    report = progress.reporter(analysis.pk)
    try:
        if self.request.is_eager:
            # in a request's thread: queued behind the other uploads' analyses, in arrival order (gate.py)
            with nullcontext() if _in_background.active else gate.IN_PROCESS:
                stored = run_analysis(analysis, report)
        else:
            with _Heartbeat(analysis.pk):
                stored = run_analysis(analysis, report)
    except (OperationalError, InterfaceError) as exc:
        if is_transient(exc) and not self.request.is_eager and self.request.retries < self.max_retries:
            logger.warning("analyse: analysis %s hit a transient database error, retrying: %s", analysis.slug, exc)
            Analysis.objects.filter(pk=analysis.pk, revision=analysis.revision).update(
                state=Analysis.State.QUEUED, attempts=attempts - 1, heartbeat=None
            )
            raise self.retry(exc=exc, countdown=min(60, 2 ** (self.request.retries + 1))) from exc
        logger.exception("analyse: analysis %s failed (database)", analysis.slug)
        return _fail(analysis, f"{type(exc).__name__}: {exc}")
    except SoftTimeLimitExceeded:
        logger.warning("analyse: analysis %s exceeded the soft time limit", analysis.slug)
        return _fail(
            analysis,
            f"TimeLimit: the analysis took longer than {settings.CELERY_TASK_SOFT_TIME_LIMIT} s "
            "(CELERY_TASK_SOFT_TIME_LIMIT) and was stopped",
        )
    except MemoryError:
        logger.warning("analyse: analysis %s ran out of memory", analysis.slug)
        return _fail(
            analysis,
            f"MemoryLimit: the analysis needed more than the worker's {settings.MESHVIZ_WORKER_MEMORY_MB} MB "
            "(MESHVIZ_WORKER_MEMORY_MB) and was stopped",
        )
    except ResultTooLarge as exc:
        return _fail(analysis, f"ResultTooLarge: {exc}")
    except Exception as exc:
        logger.exception("analyse: analysis %s failed", analysis.slug)
        message = str(exc) or type(exc).__name__
        return _fail(analysis, f"{type(exc).__name__}: {message}")
    finally:
        progress.clear(analysis.pk)
    return "done" if stored.state == Analysis.State.DONE else "superseded"


def evidence_bytes(pk: int) -> int:
    """How many characters of evidence analysis `pk` holds (counted by the database, nothing loaded)."""
    from django.db.models import Value
    from django.db.models.functions import Coalesce, Length

    from .services import EVIDENCE_FIELDS

    sizes = [Coalesce(Length(name), Value(0)) for name in EVIDENCE_FIELDS]
    total: Any = sizes[0]
    for size in sizes[1:]:
        total = total + size
    row = Analysis.objects.filter(pk=pk).annotate(evidence_size=total).values_list("evidence_size", flat=True).first()
    return int(row or 0)


#: set in the thread that analyses node-sized evidence in the background (it does not queue at the gate)
class _Background(threading.local):
    active = False


_in_background = _Background()


def _run_in_background(pk: int, force: bool) -> None:
    _in_background.active = True
    try:
        analyse.apply((pk,), {"force": force})
        # this process serves the pages: build the rule table's rows and the explorer's pod now, not on first visit
        from meshviz.web import parsed

        done = Analysis.objects.filter(pk=pk, state=Analysis.State.DONE).first()
        if done is not None:
            parsed.warm(done)
    except Exception:  # analyse records its own failures; this is a bug in it or in the warm-up
        logger.exception("analyse: the background run of analysis %s raised", pk)
    finally:
        connection.close()  # this thread's own database connection


def dispatch(pk: int, *, force: bool = False) -> bool:
    """Send the task to the broker; records `dispatched_at`.  False (logged) when the broker is unreachable.

    Without a broker (tasks in-process), node-sized evidence (over MESHVIZ_BACKGROUND_BYTES) is analysed in a
    thread of the web process: the upload answers at once (the analysis queued or running, with its progress) and
    the page reloads until it is done, instead of the request taking as long as the analysis.
    """
    from kombu.exceptions import OperationalError as BrokerError

    threshold = int(getattr(settings, "MESHVIZ_BACKGROUND_BYTES", 0) or 0)
    if settings.CELERY_TASK_ALWAYS_EAGER and threshold and evidence_bytes(pk) > threshold:
        Analysis.objects.filter(pk=pk, dispatched_at__isnull=True).update(dispatched_at=timezone.now())
        progress.report(pk, 0, 1, "waiting to start (node-sized evidence is analysed in the background)")
        threading.Thread(target=_run_in_background, args=(pk, force), name=f"analyse-{pk}", daemon=True).start()
        return True
    try:
        analyse.apply_async((pk,), {"force": force}, retry=False)
    except (BrokerError, OSError) as exc:
        logger.warning("analyse: could not queue analysis %s (the re-dispatcher will): %s", pk, exc)
        return False
    Analysis.objects.filter(pk=pk, dispatched_at__isnull=True).update(dispatched_at=timezone.now())
    return True


class Dispatch:
    """What became of an `enqueue`: `sent` is None until the transaction commits, then whether the broker took it."""

    sent: bool | None = None


def enqueue(analysis: Analysis, *, force: bool = False) -> Dispatch:
    """Queue the analysis once the current transaction commits (at once outside a transaction).

    Never raises when the broker is down: the analysis stays queued and `redispatch_queued` sends it later.
    """
    pk = analysis.pk
    Analysis.objects.filter(pk=pk).update(dispatched_at=None, attempts=0)
    outcome = Dispatch()

    def send() -> None:
        outcome.sent = dispatch(pk, force=force)

    transaction.on_commit(send)
    return outcome


@shared_task(name="meshviz.analyses.redispatch_queued")
def redispatch_queued() -> int:
    """Beat: send every queued analysis the broker never accepted (older than a few seconds); returns how many."""
    grace = timezone.now() - timedelta(seconds=float(settings.MESHVIZ_REDISPATCH_GRACE_SECONDS))
    pending = Analysis.objects.filter(
        state=Analysis.State.QUEUED, dispatched_at__isnull=True, updated__lt=grace
    ).values_list("pk", flat=True)[:200]
    sent = 0
    for pk in pending:
        if not dispatch(pk):
            break  # the broker is still down: try again at the next tick
        sent += 1
    return sent


@shared_task(name="meshviz.analyses.reap_stale_running")
def reap_stale_running() -> int:
    """Beat: requeue `running` analyses whose heartbeat stopped (their worker died); returns how many."""
    stale = timezone.now() - timedelta(seconds=float(settings.MESHVIZ_STALE_SECONDS))
    reaped = 0
    for analysis in Analysis.objects.filter(state=Analysis.State.RUNNING, heartbeat__lt=stale)[:200]:
        changed = Analysis.objects.filter(pk=analysis.pk, state=Analysis.State.RUNNING, heartbeat__lt=stale).update(
            state=Analysis.State.QUEUED, dispatched_at=None, heartbeat=None, updated=timezone.now()
        )
        if changed:
            logger.warning("reaper: analysis %s stopped beating (worker died): requeued", analysis.slug)
            reaped += 1
            dispatch(analysis.pk)
    return reaped


@shared_task(name="meshviz.analyses.apply_retention")
def apply_retention() -> int:
    """Beat: delete analyses older than MESHVIZ_RETENTION_DAYS (0: keep them); returns how many."""
    from .services import delete_analysis, expired_analyses

    deleted = 0
    for analysis in expired_analyses().select_related("owner")[:1000]:
        delete_analysis(analysis, why=f"older than the {settings.MESHVIZ_RETENTION_DAYS}-day retention")
        deleted += 1
    return deleted
