"""What django-tasks-db leaves open: jobs whose worker died, retries, and files left without a job.

Called by workers: `requeue_own` at start (jobs this worker id was running when its process died),
`requeue_lost` every few seconds from the heartbeat thread (jobs of any worker that is gone), `retry_or_keep`
after a job raised, and `reconcile` at start and every JOBS_RECONCILE_SECONDS (a file `Processing` with no job,
e.g. from an install that ran ingestion in-process, and pending index rows whose job gave up, get one). Every
change to a job is a conditional UPDATE on the queue's own row, so two workers sweeping at once cannot both act on
a job (two reconciles at once may queue an indexing job twice: the second finds nothing to do).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks.base import Task
from django_tasks_db.models import DBTaskResult

from ..models import File
from . import kinds
from .heartbeats import is_gone
from .models import WorkerHeartbeat

logger = logging.getLogger(__name__)

WORKER_LOST = "assistant_chat.jobs.recovery.WorkerLost"


class WorkerLost(Exception):
    """Recorded as a job's failure when its worker died on its last attempt."""


def _owner(row: DBTaskResult) -> str:
    return row.worker_ids[-1] if row.worker_ids else ""


def requeue_own(worker_id: str) -> int:
    """Jobs left running under this worker id by a process that died: none of them is running now."""
    rows = [row for row in DBTaskResult.objects.running() if _owner(row) == worker_id]
    for row in rows:
        _requeue_or_fail(row, f"its worker ({worker_id}) stopped while running it")
    return len(rows)


def requeue_lost(*, me: str) -> int:
    """Jobs whose worker is gone: its process is not running (same machine), it has been silent for
    JOBS_LEASE_SECONDS, or it left no heartbeat at all. Returns how many were queued again or failed."""
    beats = {beat.worker_id: beat for beat in WorkerHeartbeat.objects.all()}
    now = timezone.now()
    count = 0
    for row in DBTaskResult.objects.running():
        owner = _owner(row)
        if owner == me:
            continue
        beat = beats.get(owner)
        if beat is None or is_gone(beat, silent_for=settings.JOBS_LEASE_SECONDS, now=now):
            count += _requeue_or_fail(row, f"its worker ({owner or 'unknown'}) stopped while running it")
    return count


def _requeue_or_fail(row: DBTaskResult, reason: str) -> int:
    kind = kinds.kind_of(row.task_path)
    allowed = kind.attempts_allowed if kind else settings.JOBS_MAX_ATTEMPTS
    attempts = len(row.worker_ids)
    claim = DBTaskResult.objects.filter(pk=row.pk, status=TaskResultStatus.RUNNING, started_at=row.started_at)
    now = timezone.now()
    if attempts < allowed:
        done = claim.update(status=TaskResultStatus.READY, run_after=now, started_at=None)
        if done:
            logger.warning(
                "job %s (%s) queued again: %s (attempt %d of %d)", row.pk, row.task_path, reason, attempts, allowed
            )
        return done
    with transaction.atomic():
        done = claim.update(
            status=TaskResultStatus.FAILED,
            finished_at=now,
            exception_class_path=WORKER_LOST,
            traceback=f"WorkerLost: {reason} (attempt {attempts} of {allowed}; no attempts left)",
        )
        if done and kind is not None:
            kind.give_up(row.args_kwargs.get("kwargs", {}), f"{reason} on each of {attempts} attempts")
    if done:
        logger.error("job %s (%s) failed: %s on its last attempt", row.pk, row.task_path, reason)
    return done


def retry_or_keep(row: DBTaskResult) -> bool:
    """After a job raised (the library marked it FAILED): queue it again after a delay that doubles with each
    attempt, unless it has had all its attempts (its kind then gave up while raising). True if it will run again."""
    kind = kinds.kind_of(row.task_path)
    allowed = kind.attempts_allowed if kind else settings.JOBS_MAX_ATTEMPTS
    attempts = len(row.worker_ids)
    if attempts >= allowed:
        return False
    delay = settings.JOBS_RETRY_DELAY_SECONDS * 2 ** (attempts - 1)
    done = DBTaskResult.objects.filter(pk=row.pk, status=TaskResultStatus.FAILED).update(
        status=TaskResultStatus.READY, run_after=timezone.now() + timedelta(seconds=delay), finished_at=None
    )
    if done:
        logger.warning(
            "job %s (%s) failed (attempt %d of %d); retrying in %.0f s", row.pk, row.task_path, attempts, allowed, delay
        )
    return bool(done)


def _covered(job_task: Task, argument: str) -> set[Any]:
    """The values of `argument` among the queued or running jobs of `job_task`'s kind."""
    pending = DBTaskResult.objects.filter(
        task_path=job_task.module_path, status__in=[TaskResultStatus.READY, TaskResultStatus.RUNNING]
    ).values_list("args_kwargs", flat=True)
    return {args.get("kwargs", {}).get(argument) for args in pending}


def reconcile_files() -> int:
    """Give every `Processing` file without a queued or running ingest job one (returns how many)."""
    from .ingest import enqueue_ingest, ingest_file

    covered = _covered(ingest_file, "file_id")
    orphans = File.objects.filter(status=File.Status.PROCESSING).exclude(pk__in=[pk for pk in covered if pk])
    count = 0
    for file in orphans.only("pk", "content_hash"):
        with transaction.atomic():
            enqueue_ingest(file)
        count += 1
    if count:
        logger.warning("queued ingestion for %d file(s) that were Processing with no job", count)
    return count


def reconcile_indexing() -> int:
    """Queue `index_words` / `index_vectors` for every assistant whose pending rows (PostgreSQL) have no such job
    queued or running: one that gave up after its attempts (a database that refused its writes) leaves them
    pending, searchable but slower, until a new file's jobs came. Returns how many jobs it queued; 0 on SQLite."""
    from ..knowledge import search, vectors
    from .ingest import index_vectors, index_words

    count = 0
    for job_task, pending in (
        (index_words, search.words_pending_assistants),
        (index_vectors, vectors.vectors_pending_assistants),
    ):
        assistants = pending()
        if not assistants:
            continue
        assistants -= _covered(job_task, "assistant_id")
        for assistant_id in sorted(assistants):
            with transaction.atomic():
                kinds.enqueue(job_task, assistant_id=assistant_id)
            count += 1
    if count:
        logger.warning("queued %d indexing job(s) for pending rows that had none", count)
    return count


def reconcile() -> int:
    """Work the queue owes the data: files `Processing` and rows pending with no job (at start and every
    JOBS_RECONCILE_SECONDS)."""
    return reconcile_files() + reconcile_indexing()
