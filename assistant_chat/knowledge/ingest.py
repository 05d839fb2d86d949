"""Ingestion: turns a stored upload into indexed chunks, off the request path.

Run by the `ingest` job (assistant_chat/jobs/ingest.py) in a worker process, which `services` queue on upload,
upsert and reprocess, and by the `ingest_files` command through `process_file`. It parses (parsers.py, in a child
process with resource limits: sandbox.py), chunks (chunking.py) and swaps the file's chunks and viewer pages
(pages.py) in one transaction, so a file is searchable either with its old content or its new one, never half of
each. Chunks are embedded (embedding.py) before that transaction, with the assistant's recorded model and, while a
re-embed is under way, its new one too, and their vectors (vectors.py) are written in it.
Progress is written to `File.percent_done` as it goes. It imports nothing from the API, the views or providers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from ..embedders.base import Embedder
from ..models import Assistant, Chunk, File, FileBlob, Operation
from .chunking import chunk_document
from .embedding import embedder_for
from .pages import file_pages_replace
from .parsers import ParseError
from .sandbox import parse_contained
from .search import words_defer
from .vectors import vectors_write

logger = logging.getLogger(__name__)

# Progress writes are throttled: a 300-page PDF must not cost 300 UPDATEs.
PROGRESS_WRITE_INTERVAL = 0.25
# One thread for a local embedder's work while the chunks are written (ingestion runs one file at a time per job).
_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ingest-embed")


def process_file(
    file_pk: int,
    progress: Callable[[float], None] | None = None,
    queue_indexing: Callable[[int], None] | None = None,
) -> str:
    """Parse, chunk and index one file; returns its final status. Never raises for a bad document:
    the reason goes to `File.error_message` and the status becomes `ProcessingFailed`.
    With `queue_indexing`, the vectors are written pending (searched exactly; PostgreSQL leaves them out of the
    HNSW graph, whose insert cost three quarters of ingestion), and on PostgreSQL so are the chunks' tsvectors
    (searched by computing them), and `queue_indexing(assistant_id)` is called inside the transaction that writes
    them, to queue the job that adds the vectors to the graph and fills the tsvectors."""
    file = File.objects.select_related("assistant").get(pk=file_pk)
    if file.status == File.Status.DELETING:
        return file.status
    data = bytes(FileBlob.objects.values_list("data", flat=True).get(file_id=file_pk))
    reporter = _ProgressWriter(file, progress)
    try:
        # In a child process with resource limits: a hostile file fails with a reason, it cannot exhaust this one.
        document = parse_contained(file.name, data, progress=lambda fraction: reporter(fraction * 0.7))
        drafts = chunk_document(
            document, max_tokens=settings.CHUNK_MAX_TOKENS, overlap_tokens=settings.CHUNK_OVERLAP_TOKENS
        )
        reporter(0.8)
        if not drafts:
            raise ParseError("The file has no text to index")
    except ParseError as exc:
        return _finish(file_pk, File.Status.PROCESSING_FAILED, str(exc), progress)
    except Exception as exc:  # a parser bug must not leave the file stuck in Processing
        logger.exception("ingestion of file %s crashed", file_pk)
        return _finish(file_pk, File.Status.PROCESSING_FAILED, f"Processing failed unexpectedly: {exc}", progress)

    # Outside the transaction: a provider embedder may take seconds. An EmbeddingError propagates, so the job
    # retries later (a provider outage is not the document's fault) and its last attempt fails the file.
    # A local embedder (no network, bounded) runs in a thread while the transaction writes the chunks: on
    # PostgreSQL that write is mostly the server's work (COPY, pages), which the embedding then overlaps.
    texts = [draft.text for draft in drafts]
    embedders = {model: embedder_for(model) for model in _models_of(file.assistant_id)}
    local = {model: embedder for model, embedder in embedders.items() if embedder.local}
    vectors = {
        model: _embed_reporting(embedder, texts, reporter)
        for model, embedder in embedders.items()
        if model not in local
    }
    background = _pool.submit(lambda: {model: embedder.embed(texts) for model, embedder in local.items()})
    try:
        with transaction.atomic():
            # Lock the row: a delete or a newer upsert may have raced us while we parsed.
            current = File.objects.select_for_update().filter(pk=file_pk).first()
            if current is None or current.status == File.Status.DELETING:
                return File.Status.DELETING
            if current.content_hash != hashlib.sha256(data).hexdigest():
                return current.status  # an upsert replaced the bytes; its own job indexes them
            # Locked before the chunks, in the order the re-embed job takes them (assistant, then chunks).
            models = _models_of(file.assistant_id, lock=True)  # a re-embed may have switched models meanwhile
            Chunk.objects.filter(file_id=file_pk).delete()
            if queue_indexing is not None:
                words_defer()  # the chunks' tsvectors too are left to the job queued below (PostgreSQL)
            chunk_ids = _chunks_write(file_pk, file.assistant_id, drafts)
            rows = [(chunk_id, file.assistant_id, file_pk) for chunk_id in chunk_ids]
            file_pages_replace(file_id=file_pk, document=document)  # what the viewer shows
            vectors.update(background.result())
            reporter(0.95)
            for model in models:
                matrix = vectors[model] if model in vectors else embedder_for(model).embed(texts)
                vectors_write(model=model, rows=rows, matrix=matrix, pending=queue_indexing is not None)
            if queue_indexing is not None and connection.vendor == "postgresql":
                queue_indexing(file.assistant_id)
            _mark_done(file_pk, File.Status.AVAILABLE, "")
        if progress:
            progress(1.0)
        return File.Status.AVAILABLE
    finally:
        wait([background])  # never left running past this call (an early return, an error)


EMBED_SLICE = 256  # texts embedded between two progress reports by an embedder that takes its time


def _embed_reporting(embedder: Embedder, texts: list[str], reporter: Callable[[float], None]) -> np.ndarray:
    """`embedder.embed(texts)` a slice at a time, reporting progress from 80% to 95% in between: a provider, or the
    MiniLM embedder at about 12 KB of text a second, may take minutes on a large file."""
    parts = []
    for start in range(0, len(texts), EMBED_SLICE):
        parts.append(embedder.embed(texts[start : start + EMBED_SLICE]))
        reporter(0.8 + 0.15 * min(start + EMBED_SLICE, len(texts)) / len(texts))
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def _chunks_write(file_pk: int, assistant_id: int, drafts: list) -> list[int]:
    """Insert the file's chunks; their ids, in order. PostgreSQL: ids drawn from the sequence in one query, then
    one COPY (bulk_create's SQL building and parameter adaptation cost as much as the server's tsvector work,
    now deferred to the index job by `words_defer`)."""
    if connection.vendor != "postgresql":
        chunks = Chunk.objects.bulk_create(
            [
                Chunk(
                    file_id=file_pk,
                    assistant_id=assistant_id,
                    ordinal=draft.ordinal,
                    text=draft.text,
                    pages=draft.pages,
                    tokens=draft.tokens,
                )
                for draft in drafts
            ],
            batch_size=500,
        )
        return [chunk.pk for chunk in chunks]
    table = Chunk._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [table, len(drafts)]
        )
        ids = [row[0] for row in cursor.fetchall()]
        raw = cursor.cursor if hasattr(cursor, "cursor") else cursor
        with raw.copy(f"COPY {table} (id, file_id, assistant_id, ordinal, text, pages, tokens) FROM STDIN") as copy:
            for chunk_id, draft in zip(ids, drafts, strict=True):
                copy.write_row(
                    (chunk_id, file_pk, assistant_id, draft.ordinal, draft.text, json.dumps(draft.pages), draft.tokens)
                )
    return ids


def _models_of(assistant_id: int, lock: bool = False) -> list[str]:
    """The models whose vectors a chunk of this assistant needs: the recorded one, and a new one being
    re-embedded to. With `lock`, the assistant row is locked until the transaction ends, so a re-embed cannot
    switch models between this read and the vectors' write."""
    rows = Assistant.objects.filter(pk=assistant_id)
    if lock:
        rows = rows.select_for_update()
    current, chosen = rows.values_list("embedded_with", "embedding_model").get()
    return list(dict.fromkeys([current, chosen]))


def _finish(file_pk: int, status: str, error: str, progress: Callable[[float], None] | None) -> str:
    with transaction.atomic():
        current = File.objects.select_for_update().filter(pk=file_pk).first()
        if current is None or current.status == File.Status.DELETING:
            return File.Status.DELETING
        Chunk.objects.filter(file_id=file_pk).delete()
        file_pages_replace(file_id=file_pk, document=None)
        _mark_done(file_pk, status, error)
    if progress:
        progress(1.0)
    return status


def _mark_done(file_pk: int, status: str, error: str) -> None:
    now = timezone.now()
    File.objects.filter(pk=file_pk).update(
        status=status,
        error_message=error,
        percent_done=1.0 if status == File.Status.AVAILABLE else 0.0,
        updated_on=now,
    )
    file = File.objects.only("assistant_id", "file_id").get(pk=file_pk)
    Operation.objects.filter(
        assistant_id=file.assistant_id, file_id=file.file_id, status=Operation.Status.PROCESSING
    ).exclude(operation_type=Operation.Type.DELETE_FILE).update(
        status=Operation.Status.COMPLETED if status == File.Status.AVAILABLE else Operation.Status.FAILED,
        percent_complete=100,
        error_message=error,
        completed_on=now,
    )


class _ProgressWriter:
    def __init__(self, file: File, callback: Callable[[float], None] | None) -> None:
        self.file = file
        self.callback = callback
        self.last_write = 0.0

    def __call__(self, fraction: float) -> None:
        fraction = min(max(fraction, 0.0), 0.99)
        if self.callback:
            self.callback(fraction)
        now = time.monotonic()
        if now - self.last_write >= PROGRESS_WRITE_INTERVAL:
            self.last_write = now
            File.objects.filter(pk=self.file.pk, status=File.Status.PROCESSING).update(percent_done=fraction)
            Operation.objects.filter(
                assistant_id=self.file.assistant_id, file_id=self.file.file_id, status=Operation.Status.PROCESSING
            ).exclude(operation_type=Operation.Type.DELETE_FILE).update(percent_complete=int(fraction * 100))


def fail(file_pk: int, reason: str) -> str:
    """Leave a file whose processing could not finish (its job gave up) `ProcessingFailed`, with the reason."""
    return _finish(file_pk, File.Status.PROCESSING_FAILED, reason, None)
