"""The worker process: django-tasks-db's `Worker` loop (claim a ready job, run it, record the result) plus a
heartbeat thread and the recovery of `recovery.py`. Started by `manage.py run_worker`; commands that process
files themselves use `run_here`.

The heartbeat thread writes `WorkerHeartbeat` every JOBS_HEARTBEAT_SECONDS with its own database connection, and
every few beats queues again the jobs of workers that are gone, and every JOBS_RECONCILE_SECONDS queues the work
that has no job (recovery.reconcile). SIGTERM lets the running job finish (a second signal stops it; it is
retried). SIGKILL loses nothing: the job is run again by the next worker that looks.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connections
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult
from django_tasks_db.utils import exclusive_transaction

from ..monitoring import metrics
from . import kinds, recovery
from .heartbeats import HOST, is_gone
from .models import WorkerHeartbeat

logger = logging.getLogger(__name__)

SWEEP_EVERY_BEATS = 5
OUTAGE_RETRY_FIRST, OUTAGE_RETRY_MAX = 0.25, 4.0  # backoff while the database is away


class WorkerIdInUse(Exception):
    pass


class Heartbeat:
    """This process's heartbeat row, written from a thread of its own until `stop`."""

    def __init__(self, worker_id: str, *, sweep: bool = True) -> None:
        self.worker_id = worker_id
        self.sweep = sweep
        self.started_at = timezone.now()
        self.job: DBTaskResult | None = None
        self.jobs_done = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{worker_id}", daemon=True)

    def start(self) -> None:
        self._claim_id()
        self.beat()
        self._thread.start()

    def _claim_id(self) -> None:
        """Refuse to share an id with a live worker (each recovers its own id's jobs at start)."""
        deadline = time.monotonic() + settings.JOBS_HEARTBEAT_STALE_SECONDS + 1
        while True:
            beat = WorkerHeartbeat.objects.filter(worker_id=self.worker_id).first()
            if beat is None or beat.pid == os.getpid() and beat.host == HOST:
                return
            if is_gone(beat, silent_for=settings.JOBS_HEARTBEAT_STALE_SECONDS):
                return
            if time.monotonic() > deadline:
                raise WorkerIdInUse(
                    f"Worker id {self.worker_id!r} is in use by pid {beat.pid} on {beat.host}; "
                    "give each worker process its own --worker-id"
                )
            time.sleep(0.5)

    def beat(self) -> None:
        job = self.job
        WorkerHeartbeat.objects.update_or_create(
            worker_id=self.worker_id,
            defaults={
                "host": HOST,
                "pid": os.getpid(),
                "started_at": self.started_at,
                "beat_at": timezone.now(),
                "job_id": str(job.pk) if job is not None else "",
                "job_kind": kinds.kind_name(job.task_path) if job is not None else "",
                "jobs_done": self.jobs_done,
            },
        )

    def _loop(self) -> None:
        beats = 0
        reconciled = time.monotonic()
        try:
            while not self._stop.wait(settings.JOBS_HEARTBEAT_SECONDS):
                try:
                    close_old_connections()
                    self.beat()
                    beats += 1
                    if self.sweep and beats % SWEEP_EVERY_BEATS == 0:
                        recovery.requeue_lost(me=self.worker_id)
                    if self.sweep and time.monotonic() - reconciled >= settings.JOBS_RECONCILE_SECONDS:
                        reconciled = time.monotonic()
                        recovery.reconcile()
                except Exception:  # the database is away: /readyz reports it; keep trying
                    logger.warning("worker %s: heartbeat failed", self.worker_id, exc_info=True)
                    connections.close_all()
        finally:
            connections.close_all()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        try:
            WorkerHeartbeat.objects.filter(worker_id=self.worker_id, pid=os.getpid()).delete()
        except Exception:
            logger.warning("worker %s: could not remove its heartbeat", self.worker_id, exc_info=True)


class ChatWorker(Worker):
    """django-tasks-db's worker, with a heartbeat, recovery at start, retries and job metrics."""

    def __init__(self, *, worker_id: str, interval: float, max_tasks: int | None = None, **options: Any) -> None:
        super().__init__(
            queue_names=["*"],
            interval=interval,
            batch=False,
            backend_name="default",
            startup_delay=False,
            max_tasks=max_tasks,
            worker_id=worker_id,
            excluded_queue_names=[],
            **options,
        )
        self.heartbeat = Heartbeat(worker_id)

    def run(self) -> None:
        kinds.load_kinds()
        self.heartbeat.start()
        try:
            requeued = recovery.requeue_own(self.worker_id)
            if requeued:
                logger.warning(
                    "worker %s: %d job(s) it was running before it stopped queued again", self.worker_id, requeued
                )
            recovery.requeue_lost(me=self.worker_id)
            recovery.reconcile()
            self._run_through_outages()
        finally:
            self.heartbeat.stop()

    def _run_through_outages(self) -> None:
        """django-tasks-db's loop, started again after the database goes away (it raises on any error but a locked
        SQLite), so a database restart never takes the worker down. A job it was running when the database went
        away is queued again once the database answers (nothing runs here meanwhile: one job at a time)."""
        delay = OUTAGE_RETRY_FIRST
        while True:
            try:
                super().run()
                return
            except (OperationalError, InterfaceError) as exc:
                if not self.running:
                    return
                logger.warning(
                    "worker %s: the database failed (%s); trying again in %.1f s", self.worker_id, exc, delay
                )
            connections.close_all()
            time.sleep(delay)
            delay = min(delay * 2, OUTAGE_RETRY_MAX)
            try:
                requeued = recovery.requeue_own(self.worker_id)
            except (OperationalError, InterfaceError):
                continue  # still away: the loop above tries again, and fails, after the next wait
            delay = OUTAGE_RETRY_FIRST
            if requeued:
                logger.warning("worker %s: %d job(s) cut short by the outage queued again", self.worker_id, requeued)

    def run_task(self, db_task_result: DBTaskResult) -> None:
        self.heartbeat.job = db_task_result
        started = time.monotonic()
        try:
            super().run_task(db_task_result)
        finally:
            self.heartbeat.job = None
            self.heartbeat.jobs_done += 1
        outcome = str(db_task_result.status)
        metrics.job_finished(kinds.kind_name(db_task_result.task_path), outcome, time.monotonic() - started)
        if db_task_result.status == TaskResultStatus.FAILED:
            try:
                recovery.retry_or_keep(db_task_result)
            except Exception:
                logger.exception("job %s: could not schedule its retry", db_task_result.pk)


def run_here(job_id: str) -> bool:
    """Claim one ready job and run it in this process (under a heartbeat, so no worker takes it for lost).
    Returns False when a worker already has it."""
    worker = ChatWorker(worker_id=f"{HOST[:40]}-cmd-{os.getpid()}", interval=0)
    worker.heartbeat.sweep = False
    with exclusive_transaction(DBTaskResult.objects.db):
        row = DBTaskResult.objects.filter(pk=job_id, status=TaskResultStatus.READY).get_locked()
        if row is not None:
            row.claim(worker.worker_id)
    if row is None:
        return False
    worker.heartbeat.start()
    try:
        worker.run_task(row)
    finally:
        worker.heartbeat.stop()
    return True
