"""The `ingest` job: parse, chunk and index one stored file (knowledge/ingest.py does the work).

Queued by `services.file_upload` and `services.file_reprocess` inside their transactions. Idempotent: the file's
chunks are swapped in one transaction, so a run after a crash replaces what an earlier run wrote, and a run that
finds the same bytes already indexed does nothing. When the last attempt fails the file becomes
`ProcessingFailed` with the reason and its operation `Failed`; a file never stays `Processing` without a job.
Queued with a file's chunks (PostgreSQL), the `index_words` job fills their tsvectors and the `index_vectors` job
adds their vectors to the HNSW graph afterwards.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from ..knowledge import ingest, search, vectors
from ..models import File
from ..monitoring import metrics
from .kinds import enqueue, job

logger = logging.getLogger(__name__)


def _give_up(kwargs: dict, reason: str) -> None:
    ingest.fail(kwargs["file_id"], f"Processing failed: {reason}")


@job("ingest", give_up=_give_up)
def ingest_file(*, file_id: int, content_hash: str) -> str:
    file = File.objects.filter(pk=file_id).only("status", "content_hash", "size").first()
    if file is None:
        return "gone"  # deleted (and purged) before its turn came
    if file.status == File.Status.AVAILABLE and file.content_hash == content_hash:
        return file.status  # an earlier run indexed these bytes and then lost its worker
    status = ingest.process_file(file_id, queue_indexing=_queue_indexing)
    if status == File.Status.AVAILABLE:
        metrics.ingested(file.size)
    return status


def _queue_indexing(assistant_id: int) -> None:
    enqueue(index_words, assistant_id=assistant_id)
    enqueue(index_vectors, assistant_id=assistant_id)


def _give_up_indexing(kwargs: dict, reason: str) -> None:
    # Nothing is lost: the rows stay pending, searched meanwhile, and the next file's jobs index them.
    logger.warning("indexing chunks of assistant %s failed: %s", kwargs.get("assistant_id"), reason)


# Ahead of queued ingestion (a higher priority): while a chunk's tsvector is pending every word search computes it
# (~0.15 ms a chunk: 62-68 ms a search with one 400 KB file pending), so the pending set is kept to about one file
# even during a bulk upload; filling costs ~0.25 ms a chunk, once. Pending vectors cost a search far less (an
# exact scan), and their graph insert ~2 ms each, so `index_vectors` waits its turn.
@job("index_words", give_up=_give_up_indexing, priority=1)
def index_words(*, assistant_id: int) -> int:
    """Fill an assistant's pending tsvectors (PostgreSQL), in batches; queued by `ingest_file` in the transaction
    that wrote the chunks. Idempotent: a run that finds none pending (filled by an earlier run, or the file
    deleted meanwhile) does nothing."""
    return search.words_index_pending(assistant_id=assistant_id)


@job("index_vectors", give_up=_give_up_indexing)
def index_vectors(*, assistant_id: int) -> int:
    """Add an assistant's pending vectors to the HNSW graph (PostgreSQL), in batches; queued by `ingest_file` in
    the transaction that wrote them. Idempotent: a run that finds none pending does nothing."""
    return vectors.vectors_index_pending(assistant_id=assistant_id)


def enqueue_ingest(file: File) -> FileJob:
    """Queue processing of `file`'s stored bytes (inside the caller's transaction)."""
    return FileJob(file_pk=file.pk, job_id=enqueue(ingest_file, file_id=file.pk, content_hash=file.content_hash))


@dataclass
class FileJob:
    """A handle on a file's processing: wait for it, or (commands) run it in this process."""

    file_pk: int
    job_id: str | None

    def status(self) -> str:
        return File.objects.filter(pk=self.file_pk).values_list("status", flat=True).first() or File.Status.DELETING

    def wait(self, timeout: float | None = None) -> str:
        """The file's status once processing ends, or as it is when `timeout` seconds have passed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.02
        while True:
            status = self.status()
            if status != File.Status.PROCESSING:
                return status
            if deadline is not None and time.monotonic() >= deadline:
                return status
            time.sleep(pause if deadline is None else max(0.0, min(pause, deadline - time.monotonic())))
            pause = min(pause * 2, 0.25)

    def result(self, timeout: float | None = None) -> str:
        """Like `Future.result`: the final status, or TimeoutError while the file is still processing."""
        status = self.wait(timeout)
        if status == File.Status.PROCESSING:
            raise TimeoutError(f"file {self.file_pk} is still processing")
        return status

    def run_here(self, progress_interval: float = 0.25) -> str:
        """Run the job in this process unless a worker has already taken it, then wait for the end (commands
        use this, so they work with no worker running; the job is still a row, so a crash here loses nothing)."""
        if self.job_id is not None:
            from .worker import run_here

            run_here(self.job_id)
        return self.wait()
