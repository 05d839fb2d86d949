"""What a scrape of /metrics returns: every process's metrics (multi-process mode) plus values read at scrape
time from the database: jobs queued and running by kind, live workers, and rows waiting to be indexed."""

from __future__ import annotations

from collections import Counter
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from . import metrics


class QueueCollector(Collector):
    def collect(self) -> Any:
        from django.db import close_old_connections
        from django_tasks import TaskResultStatus
        from django_tasks_db.models import DBTaskResult

        from ..jobs import kinds
        from ..jobs.heartbeats import live_workers
        from ..knowledge import search, vectors

        close_old_connections()
        depth = GaugeMetricFamily(
            "chat_jobs_queue_depth", "Jobs waiting (READY) or running (RUNNING), by kind", labels=["kind", "state"]
        )
        counts = Counter(
            (kinds.kind_name(path), state)
            for path, state in DBTaskResult.objects.filter(
                status__in=[TaskResultStatus.READY, TaskResultStatus.RUNNING]
            ).values_list("task_path", "status")
        )
        for kind in {kind.name for kind in kinds.load_kinds().values()}:
            for state in ("READY", "RUNNING"):
                counts.setdefault((kind, state), 0)
        for (kind, state), count in sorted(counts.items()):
            depth.add_metric([kind, state], count)
        yield depth
        workers = GaugeMetricFamily("chat_job_workers_alive", "Job workers with a recent heartbeat")
        workers.add_metric([], len(live_workers()))
        yield workers
        # Rows a job still has to index (PostgreSQL; partial indexes count them): searchable meanwhile, but slower.
        # Lasting above zero means the indexing jobs fail (workers queue them again every JOBS_RECONCILE_SECONDS).
        pending = GaugeMetricFamily(
            "chat_index_pending_rows", "Chunks whose words (tsvector) or vector (HNSW) wait for a job", labels=["index"]
        )
        pending.add_metric(["words"], search.words_pending_count())
        pending.add_metric(["vectors"], vectors.vectors_pending_count())
        yield pending


def render() -> tuple[bytes, str]:
    from django.db import connections

    try:
        return _render()
    finally:
        connections.close_all()  # this runs on a pool thread: leave no connection behind on it


def _render() -> tuple[bytes, str]:
    registry = CollectorRegistry()
    registry.register(QueueCollector())
    path = metrics.multiprocess_dir()
    if path is not None:
        metrics.forget_dead_processes()
        multiprocess.MultiProcessCollector(registry, path=str(path))
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY) + generate_latest(registry), CONTENT_TYPE_LATEST
