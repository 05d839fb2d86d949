"""`manage.py run_worker [--worker-id ID]`: run background jobs (ingestion, ...) until stopped.

One worker runs one job at a time; run several (each with its own --worker-id) for more. SIGTERM or Ctrl+C lets
the running job finish first; a second one stops it (it is retried). See assistant_chat/jobs.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...jobs.heartbeats import HOST
from ...jobs.worker import ChatWorker, WorkerIdInUse


class Command(BaseCommand):
    help = "Run background jobs (file ingestion, ...) from the database queue until stopped."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--worker-id",
            default=f"{HOST[:50]}-1",
            help="This worker's id, unique among running workers and stable across its restarts, so that a "
            "restarted worker at once takes back the jobs it was running (default: <hostname>-1).",
        )
        parser.add_argument(
            "--interval",
            type=float,
            default=None,
            help="Seconds an idle worker waits before looking for jobs again (default: JOBS_POLL_SECONDS).",
        )
        parser.add_argument("--max-jobs", type=int, default=None, help="Exit after this many jobs (default: never).")

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.JOBS_MODE == "immediate":
            raise CommandError("JOBS_MODE=immediate runs jobs in the caller; a worker has nothing to do")
        worker_id = options["worker_id"]
        if not worker_id or len(worker_id) > 64:
            raise CommandError("--worker-id must be 1-64 characters")
        for name in ("django_tasks", "django_tasks_db", "assistant_chat.jobs"):
            logging.getLogger(name).setLevel(logging.INFO)
        worker = ChatWorker(
            worker_id=worker_id,
            interval=settings.JOBS_POLL_SECONDS if options["interval"] is None else options["interval"],
            max_tasks=options["max_jobs"],
        )
        worker.configure_signals()
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, worker.shutdown)
        self.stdout.write(f"Worker {worker_id} running jobs (pid {os.getpid()})")
        self.stdout.flush()
        try:
            worker.run()
        except WorkerIdInUse as exc:
            raise CommandError(str(exc)) from None
        sys.stdout.flush()
