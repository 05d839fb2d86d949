"""The `reembed` job: embed every chunk of an assistant with its newly chosen embedding model, then switch.

Queued by `embedding_model_change` (the admin, when staff pick another model) in the transaction that records the
choice. Until the job ends, search keeps using the previous model's vectors (`Assistant.embedded_with`), so
answers never mix two vector spaces; ingestion meanwhile writes vectors for both models. Idempotent: it embeds
only chunks that lack the new model's vector, so a rerun after a crash continues where the last one stopped.
Progress goes to `Assistant.embedding_progress`; the last failed attempt records the reason in `embedding_error`.
"""

from __future__ import annotations

from django.db import connection, transaction

from ..embedders.base import EmbeddingError
from ..knowledge.embedding import embedder_for
from ..knowledge.vectors import ensure_index, vectors_delete, vectors_write
from ..models import Assistant, Chunk, ChunkVector
from .kinds import enqueue, job

BATCH = 512


class EmbeddingModelError(ValueError):
    """The chosen embedding model cannot be used (unknown, or its provider is not configured)."""


def _give_up(kwargs: dict, reason: str) -> None:
    Assistant.objects.filter(pk=kwargs["assistant_id"], embedding_model=kwargs["model"]).update(
        embedding_error=f"Re-embedding with {kwargs['model']} failed: {reason}"
    )


def embedding_model_change(*, assistant: Assistant, model: str) -> str | None:
    """Record `model` as the assistant's embedding model and queue its re-embedding; returns the job id (None
    when nothing changes or jobs run in the caller). Raises EmbeddingModelError for a model that cannot work."""
    try:
        embedder_for(model)
    except EmbeddingError as exc:
        raise EmbeddingModelError(str(exc)) from exc
    with transaction.atomic():
        locked = Assistant.objects.select_for_update().get(pk=assistant.pk)
        pending = model != locked.embedded_with
        Assistant.objects.filter(pk=assistant.pk).update(
            embedding_model=model, embedding_progress=0.0 if pending else 1.0, embedding_error=""
        )
        assistant.embedding_model = model
        # Old vectors of an abandoned switch (A -> B -> A before B finished) are dropped by the next finished job.
        return enqueue(reembed_assistant, assistant_id=assistant.pk, model=model) if pending else None


@job("reembed", give_up=_give_up)
def reembed_assistant(*, assistant_id: int, model: str) -> str:
    assistant = Assistant.objects.filter(pk=assistant_id).only("embedding_model", "embedded_with").first()
    if assistant is None:
        return "gone"
    if assistant.embedding_model != model:
        return "superseded"  # staff chose yet another model; that choice has its own job
    if assistant.embedded_with == model:
        return "done"
    embedder = embedder_for(model)
    total = Chunk.objects.filter(assistant_id=assistant_id).count()
    while True:
        missing = list(
            Chunk.objects.filter(assistant_id=assistant_id)
            .exclude(pk__in=ChunkVector.objects.filter(assistant_id=assistant_id, model=model).values("chunk_id"))
            .order_by("pk")
            .values_list("pk", "file_id", "text")[:BATCH]
        )
        if not missing:
            break
        matrix = embedder.embed([text for _pk, _file, text in missing])
        with transaction.atomic():
            # Chunks deleted meanwhile (a file replaced or removed) are skipped; locked so none goes mid-write.
            alive = set(
                Chunk.objects.select_for_update()
                .filter(pk__in=[pk for pk, _f, _t in missing])
                .values_list("pk", flat=True)
            )
            keep = [index for index, (pk, _f, _t) in enumerate(missing) if pk in alive]
            vectors_write(
                model=model,
                rows=[(missing[i][0], assistant_id, missing[i][1]) for i in keep],
                matrix=matrix[keep],
            )
        done = ChunkVector.objects.filter(assistant_id=assistant_id, model=model).count()
        Assistant.objects.filter(pk=assistant_id, embedding_model=model).update(
            embedding_progress=min(done / total, 0.99) if total else 0.99
        )
    if embedder.dimensions:
        ensure_index(embedder.dimensions)
    with transaction.atomic():
        locked = Assistant.objects.select_for_update().get(pk=assistant_id)
        if locked.embedding_model != model:
            return "superseded"
        still = Chunk.objects.filter(assistant_id=assistant_id).exclude(
            pk__in=ChunkVector.objects.filter(assistant_id=assistant_id, model=model).values("chunk_id")
        )
        if still.exists():
            # Written by an ingestion that began before this job saw the new model: embed them under the lock.
            rows = list(still.values_list("pk", "file_id", "text"))
            vectors_write(
                model=model,
                rows=[(pk, assistant_id, file_id) for pk, file_id, _t in rows],
                matrix=embedder.embed([text for _pk, _f, text in rows]),
            )
        Assistant.objects.filter(pk=assistant_id).update(
            embedded_with=model, embedding_progress=1.0, embedding_error=""
        )
        vectors_delete(assistant_id=assistant_id, keep_model=model)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE assistant_chat_chunkvector")
    return "done"
