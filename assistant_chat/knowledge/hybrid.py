"""Hybrid ranking: lexical (search.py) and dense (vectors.py) candidates fused by reciprocal rank fusion, then
ranked again by their best sentence and their words' meaning, and led by the question's own words (rerank.py).
With an embedder whose meaning ranking is strong enough to lead (`WEIGHTED_FUSION`: the built-in MiniLM), the
two are fused instead by a weighted sum of their scores, each scaled by its list's best (Bruch et al. 2023), and
then led by the question's own words; no second stage.

Called by retrieval.py, which serves `context`, chat and rooms alike. A question is embedded with the model the
assistant's vectors were made with (`Assistant.embedded_with`). If embedding the question fails (a provider
down), the lexical ranking is used alone and the failure is logged: a question is never lost to it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

import numpy as np
from django.conf import settings
from django.db import DatabaseError, connection

from ..embedders import minilm
from ..embedders.base import Embedder, EmbeddingError
from ..models import Assistant
from . import overlap, rerank
from .embedding import embedder_for, query_vector
from .search import Hit, query_terms, search_chunks
from .vectors import VectorHit, vector_search

logger = logging.getLogger(__name__)

Mode = Literal["hybrid", "lexical", "dense"]
# RRF's constant (Cormack et al. 2009): a rank's weight is 1 / (K + rank); 60 is the paper's and everyone's.
RRF_K = 60
# Nearest neighbours always exist, relevant or not. A chunk found by meaning alone is kept only when it is at least
# this fraction as similar as the best one, so a question does not pull unrelated passages into the prompt.
DENSE_RELATIVE_FLOOR = 0.5


@dataclass(frozen=True)
class WeightedFusion:
    """How an embedder whose meaning ranking leads is fused with the word ranking: the word ranking's share of the
    weighted sum (the meaning ranking has the rest), raised when the first word match holds at least `covered` of
    the question's terms (a question in the document's own words, where words are the better guide)."""

    word_weight: float
    covered_word_weight: float
    covered: float

    def weight_for(self, first_coverage: float) -> float:
        """The word share, given how much of the question's terms the first word match holds."""
        return self.covered_word_weight if first_coverage >= self.covered else self.word_weight


# Chosen on bench/retrieval_dev with bench/fusion_dev.py (docs/benchmarks.md): a word share of 0.1-0.2 is a plateau;
# raising it at high coverage changes nothing there and keeps questions in the document's words where words put them.
WEIGHTED_FUSION = {minilm.MODEL: WeightedFusion(word_weight=0.15, covered_word_weight=0.5, covered=0.75)}
PREPARE_BATCH = 4  # word matches whose sentences are embedded between two looks at the vector search
THREAD_PREPARE_BATCH = 2  # meaning matches prepared on the search thread between two looks at the word search


def search(
    *, assistant: Assistant, query: str, file_pks: Collection[int] | None = None, limit: int = 16, mode: Mode = "hybrid"
) -> list[Hit]:
    """The best `limit` chunks for `query`, best first, under the file set of a filter (None: all files)."""
    if limit <= 0 or (file_pks is not None and not file_pks) or not query.strip():
        return []
    # Outside a transaction the meaning half runs on another connection while the words half runs here (overlap.py).
    words_done = threading.Event()
    meaning = (
        overlap.submit(_meaning, assistant, query, file_pks, limit, words_done)
        if mode == "hybrid" and overlap.usable()
        else None
    )
    lexical = (
        [] if mode == "dense" else search_chunks(assistant_id=assistant.pk, query=query, file_pks=file_pks, limit=limit)
    )
    words_done.set()
    if mode == "lexical":
        return lexical
    try:
        embedder: Embedder | None = embedder_for(assistant.embedded_with)
    except EmbeddingError:  # not configured: embedding the question fails below, and is reported there
        embedder = None
    rerank_depth = settings.SEARCH_RERANK_DEPTH if embedder is not None and embedder.local else 0
    if meaning is not None and embedder is not None and rerank_depth > 0:
        # While the vector search runs on the other connection, the first word matches' sentences get their
        # vectors for the second stage, a few at a time, until it answers: time this thread would spend waiting.
        for start in range(0, min(len(lexical), rerank_depth), PREPARE_BATCH):
            if meaning.done():
                break
            rerank.prepare(embedder, lexical[start : start + PREPARE_BATCH])
    try:
        vector, dense, rows = meaning.result() if meaning is not None else _meaning(assistant, query, file_pks, limit)
    except EmbeddingError:
        logger.warning(
            "embedding a question for assistant %s failed; lexical ranking only", assistant.pk, exc_info=True
        )
        return lexical
    if mode == "dense":
        return [_hit(rows[hit.chunk_id], max(hit.similarity, 0.0)) for hit in dense if hit.chunk_id in rows]
    if dense:
        floor = max(dense[0].similarity, 0.0) * DENSE_RELATIVE_FLOOR  # nothing at or below 0 is related
        lexical_ids = {hit.chunk_id for hit in lexical}
        dense = [
            hit for hit in dense if (hit.similarity > 0 and hit.similarity >= floor) or hit.chunk_id in lexical_ids
        ]
    weighted = WEIGHTED_FUSION.get(assistant.embedded_with)
    # The first word match's coverage, read once for both the weighted fusion and the lead below.
    first_coverage = rerank.coverage(query, lexical[0].text) if weighted and lexical else None
    word_weight = weighted.weight_for(first_coverage or 0.0) if weighted else None
    hits = fuse(lexical, dense, limit, rows, word_weight=word_weight)
    if embedder is not None and rerank_depth > 0:
        hits = rerank.by_meaning(embedder, vector, hits, depth=rerank_depth, terms=query_terms(query))
    hits = rerank.lexical_lead(query, lexical, hits, first_coverage)
    # Scores stay in falling order down the list (the API shows them): the fused ones, handed out in the new order.
    scores = sorted((hit.score for hit in hits), reverse=True)
    return [Hit(h.chunk_id, h.file_pk, h.ordinal, h.text, h.pages, s) for h, s in zip(hits, scores, strict=True)]


def _meaning(
    assistant: Assistant,
    query: str,
    file_pks: Collection[int] | None,
    limit: int,
    words_done: threading.Event | None = None,
) -> tuple[np.ndarray, list[VectorHit], dict[int, tuple]]:
    """The question's vector, its nearest chunks and their rows (read here, on a search thread while the word
    search runs, rather than after it on the caller's connection)."""
    vector = query_vector(assistant.embedded_with, query)
    dense = vector_search(
        assistant_id=assistant.pk, model=assistant.embedded_with, query=vector, file_pks=file_pks, limit=limit
    )
    rows = _chunks([hit.chunk_id for hit in dense])
    if words_done is not None:
        _prepare_until(words_done, assistant, dense, rows)
    return vector, dense, rows


def _prepare_until(
    words_done: threading.Event, assistant: Assistant, dense: list[VectorHit], rows: dict[int, tuple]
) -> None:
    """On a search thread whose vector search answered before the word search: the first meaning matches'
    sentences and words for the second stage, a couple at a time, until the word search is done (on PostgreSQL
    the word search is usually the slower half, so this thread would otherwise sit idle). Only an optimisation:
    a failure here leaves the work to the caller."""
    try:
        embedder = embedder_for(assistant.embedded_with)
        head = dense[: settings.SEARCH_RERANK_DEPTH] if embedder.local else []
        for start in range(0, len(head), THREAD_PREPARE_BATCH):
            if words_done.is_set():
                return
            batch = head[start : start + THREAD_PREPARE_BATCH]
            rerank.prepare(embedder, [_hit(rows[hit.chunk_id], 0.0) for hit in batch if hit.chunk_id in rows])
    except (EmbeddingError, DatabaseError):
        logger.info("preparing the second stage on a search thread failed; the caller does it", exc_info=True)


def fuse(
    lexical: list[Hit], dense: list, limit: int, rows: dict[int, tuple] | None = None, word_weight: float | None = None
) -> list[Hit]:
    """Reciprocal rank fusion, or with `word_weight` the weighted sum of each list's scores scaled by its best.
    Either way a chunk first in both lists scores 1.0. `rows`: chunk rows already read (by id); the others found
    by meaning alone are read here."""
    fused = _rrf(lexical, dense) if word_weight is None else _weighted(lexical, dense, word_weight)
    best = sorted(fused, key=lambda chunk_id: (-fused[chunk_id], chunk_id))[:limit]
    known = {hit.chunk_id: hit for hit in lexical}
    rows = dict(rows or {})
    rows.update(_chunks([chunk_id for chunk_id in best if chunk_id not in known and chunk_id not in rows]))
    hits = []
    for chunk_id in best:
        base = known.get(chunk_id) or (_hit(rows[chunk_id], 0.0) if chunk_id in rows else None)
        if base is not None:
            hits.append(
                Hit(base.chunk_id, base.file_pk, base.ordinal, base.text, base.pages, round(fused[chunk_id], 6))
            )
    return hits


def _rrf(lexical: list[Hit], dense: list) -> dict[int, float]:
    fused: dict[int, float] = {}
    for ranking in (lexical, dense):
        for rank, hit in enumerate(ranking):
            fused[hit.chunk_id] = fused.get(hit.chunk_id, 0.0) + 1.0 / (RRF_K + rank + 1)
    top = 2.0 / (RRF_K + 1)
    return {chunk_id: score / top for chunk_id, score in fused.items()}


def _weighted(lexical: list[Hit], dense: list, word_weight: float) -> dict[int, float]:
    fused: dict[int, float] = {}
    lists = (
        (word_weight, [(hit.chunk_id, hit.score) for hit in lexical]),
        (1.0 - word_weight, [(hit.chunk_id, hit.similarity) for hit in dense]),
    )
    for weight, scored in lists:
        best = max((score for _, score in scored), default=0.0)
        for chunk_id, score in scored:
            fused[chunk_id] = fused.get(chunk_id, 0.0) + (weight * score / best if best > 0 else 0.0)
    return fused


def _chunks(chunk_ids: list[int]) -> dict[int, tuple]:
    if not chunk_ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, file_id, ordinal, text, pages FROM assistant_chat_chunk "  # noqa: S608
            f"WHERE id IN ({','.join(['%s'] * len(chunk_ids))})",
            chunk_ids,
        )
        return {row[0]: row for row in cursor.fetchall()}


def _hit(row: tuple, score: float) -> Hit:
    pages = json.loads(row[4]) if isinstance(row[4], str) else row[4]
    return Hit(row[0], row[1], row[2], row[3], list(pages or []), round(score, 6))
