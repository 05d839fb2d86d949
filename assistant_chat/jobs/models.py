"""The one table the jobs package adds beside django-tasks-db's own: each worker's heartbeat."""

from __future__ import annotations

from django.db import models


class WorkerHeartbeat(models.Model):
    """A running worker, written every JOBS_HEARTBEAT_SECONDS. A clean stop deletes the row; a crash leaves it to
    go stale, which is how /readyz and the recovery of lost jobs learn that the worker is gone."""

    worker_id = models.CharField(
        max_length=64, primary_key=True, help_text="The worker's id (--worker-id): one per running worker process."
    )
    host = models.CharField(max_length=255, help_text="The machine the worker runs on.")
    pid = models.PositiveIntegerField(help_text="The worker's process id on that machine.")
    started_at = models.DateTimeField(help_text="When this worker process started.")
    beat_at = models.DateTimeField(db_index=True, help_text="The worker's latest heartbeat.")
    job_id = models.CharField(max_length=64, blank=True, help_text="The job it is running now, if any.")
    job_kind = models.CharField(max_length=64, blank=True, help_text="That job's kind (ingest, ...).")
    jobs_done = models.PositiveIntegerField(default=0, help_text="Jobs this process has finished.")

    class Meta:
        ordering = ["worker_id"]
        verbose_name = "worker"

    def __str__(self) -> str:
        return f"{self.worker_id} (pid {self.pid} on {self.host})"
