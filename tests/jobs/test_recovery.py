"""The durable queue in this process, against the real ORM: recovery of jobs whose worker died, retries, files
without a job, worker ids. (tests/jobs/test_worker_faults.py kills real worker processes.)"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from assistant_chat import services
from assistant_chat.jobs import recovery
from assistant_chat.jobs.heartbeats import HOST
from assistant_chat.jobs.models import WorkerHeartbeat
from assistant_chat.jobs.worker import ChatWorker, Heartbeat, WorkerIdInUse, run_here
from assistant_chat.models import File, Operation

pytestmark = pytest.mark.django_db(transaction=True)

DATABASE_TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}


@pytest.fixture(autouse=True)
def durable_jobs(settings) -> None:
    settings.JOBS_MODE = "worker"
    settings.TASKS = DATABASE_TASKS
    settings.JOBS_RETRY_DELAY_SECONDS = 60


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def beat(worker_id: str, *, pid: int, age: float = 0.0, host: str = HOST) -> WorkerHeartbeat:
    now = timezone.now()
    return WorkerHeartbeat.objects.create(
        worker_id=worker_id, host=host, pid=pid, started_at=now, beat_at=now - timedelta(seconds=age)
    )


def uploaded(name: str = "notes.txt") -> tuple[File, DBTaskResult]:
    assistant = services.assistant_create(name=f"a-{name.split('.')[0]}")
    file, _operation, job = services.file_upload(assistant=assistant, name=name, data=b"Otters hold hands asleep.")
    return file, DBTaskResult.objects.get(pk=job.job_id)


def claimed_by(row: DBTaskResult, *worker_ids: str) -> DBTaskResult:
    DBTaskResult.objects.filter(pk=row.pk).update(
        status=TaskResultStatus.RUNNING, worker_ids=list(worker_ids), started_at=timezone.now()
    )
    return DBTaskResult.objects.get(pk=row.pk)


def test_an_upload_is_a_queued_job_committed_with_the_file() -> None:
    file, row = uploaded()
    assert row.status == TaskResultStatus.READY
    assert row.args_kwargs["kwargs"] == {"file_id": file.pk, "content_hash": file.content_hash}
    assert File.objects.get(pk=file.pk).status == File.Status.PROCESSING


def test_jobs_of_a_dead_or_silent_worker_are_queued_again_and_a_live_ones_are_not(settings) -> None:
    settings.JOBS_LEASE_SECONDS = 30
    _file, dead_job = uploaded("a.txt")
    _file, silent_job = uploaded("b.txt")
    _file, live_job = uploaded("c.txt")
    _file, unknown_job = uploaded("d.txt")
    beat("dead", pid=dead_pid())
    beat("silent", pid=os.getpid(), host="elsewhere", age=31)
    beat("live", pid=os.getpid(), host="elsewhere", age=1)
    for row, owner in [(dead_job, "dead"), (silent_job, "silent"), (live_job, "live"), (unknown_job, "never-beat")]:
        claimed_by(row, owner)

    assert recovery.requeue_lost(me="me") == 3
    states = dict(DBTaskResult.objects.values_list("pk", "status"))
    assert states[dead_job.pk] == states[silent_job.pk] == states[unknown_job.pk] == TaskResultStatus.READY
    assert states[live_job.pk] == TaskResultStatus.RUNNING


def test_a_job_that_lost_its_worker_on_every_attempt_fails_and_its_file_with_it(settings) -> None:
    settings.JOBS_MAX_ATTEMPTS = 3
    file, row = uploaded()
    claimed_by(row, "w", "w", "w")  # the third attempt's worker died too
    beat("w", pid=dead_pid())
    assert recovery.requeue_lost(me="me") == 1
    row.refresh_from_db()
    assert row.status == TaskResultStatus.FAILED
    assert "no attempts left" in row.traceback
    file.refresh_from_db()
    assert file.status == File.Status.PROCESSING_FAILED
    assert "stopped while running it" in file.error_message
    assert Operation.objects.get(file_id=file.file_id).status == Operation.Status.FAILED


def test_a_restarted_worker_takes_back_its_own_jobs_at_once() -> None:
    _file, row = uploaded()
    claimed_by(row, "run-1")
    assert recovery.requeue_own("run-1") == 1
    row.refresh_from_db()
    assert row.status == TaskResultStatus.READY and row.worker_ids == ["run-1"]


def test_a_job_that_raises_is_retried_later_then_gives_up(monkeypatch: pytest.MonkeyPatch, settings) -> None:
    settings.JOBS_MAX_ATTEMPTS = 2
    file, row = uploaded()

    def broken(file_pk: int, progress=None, queue_indexing=None) -> str:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("assistant_chat.knowledge.ingest.process_file", broken)
    worker = ChatWorker(worker_id="t-1", interval=0)
    row.claim("t-1")
    worker.run_task(row)
    row.refresh_from_db()
    assert row.status == TaskResultStatus.READY  # queued again, after a delay
    assert row.run_after > timezone.now() + timedelta(seconds=50)
    assert "disk on fire" in row.traceback
    assert File.objects.get(pk=file.pk).status == File.Status.PROCESSING

    row.claim("t-1")
    worker.run_task(row)  # the last attempt
    row.refresh_from_db()
    assert row.status == TaskResultStatus.FAILED
    file.refresh_from_db()
    assert file.status == File.Status.PROCESSING_FAILED
    assert file.error_message == "Processing failed: RuntimeError: disk on fire"
    assert Operation.objects.get(file_id=file.file_id).status == Operation.Status.FAILED


def test_a_processing_file_without_a_job_gets_one() -> None:
    file, row = uploaded()
    row.delete()  # as an install that ran ingestion in its web process left files after a restart
    assert recovery.reconcile_files() == 1
    assert recovery.reconcile_files() == 0  # it has one now
    queued = DBTaskResult.objects.get()
    assert queued.args_kwargs["kwargs"]["file_id"] == file.pk


def test_the_heartbeat_reconciles_every_few_seconds_not_only_at_start(settings) -> None:
    settings.JOBS_HEARTBEAT_SECONDS = 0.05
    settings.JOBS_RECONCILE_SECONDS = 0.2
    heartbeat = Heartbeat("run-1")
    heartbeat.start()
    try:
        file, row = uploaded()
        row.delete()  # a file left Processing without a job while the worker runs
        deadline = time.monotonic() + 30
        while not DBTaskResult.objects.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        heartbeat.stop()
    assert DBTaskResult.objects.get().args_kwargs["kwargs"]["file_id"] == file.pk
    assert recovery.reconcile_indexing() == 0  # SQLite indexes every write: never a pending row


def test_run_here_processes_the_file_in_this_process_and_records_the_job() -> None:
    file, row = uploaded()
    assert run_here(str(row.pk)) is True
    row.refresh_from_db()
    assert row.status == TaskResultStatus.SUCCESSFUL
    assert File.objects.get(pk=file.pk).status == File.Status.AVAILABLE
    assert run_here(str(row.pk)) is False  # already done: nothing to take
    assert not WorkerHeartbeat.objects.exists()  # its heartbeat went with it


def test_a_second_worker_with_a_live_workers_id_refuses_to_start(settings) -> None:
    settings.JOBS_HEARTBEAT_STALE_SECONDS = 1.0
    beat("run-1", pid=os.getppid())  # a live process on this machine holds the id, and keeps beating
    stop = threading.Event()

    def keep_beating() -> None:
        while not stop.wait(0.2):
            WorkerHeartbeat.objects.filter(worker_id="run-1").update(beat_at=timezone.now())

    beater = threading.Thread(target=keep_beating)
    beater.start()
    try:
        with pytest.raises(WorkerIdInUse, match="run-1"):
            Heartbeat("run-1")._claim_id()
    finally:
        stop.set()
        beater.join()
    WorkerHeartbeat.objects.update(pid=dead_pid())  # its process died: the id is free at once
    Heartbeat("run-1")._claim_id()


def test_a_job_whose_file_was_deleted_before_its_turn_does_nothing() -> None:
    file, row = uploaded()
    services.file_delete(file=file)
    services.file_purge(file=file)
    assert run_here(str(row.pk)) is True
    row.refresh_from_db()
    assert row.status == TaskResultStatus.SUCCESSFUL and row.return_value == "gone"
