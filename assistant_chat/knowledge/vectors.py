"""The vector index: chunk embeddings stored in the database the project runs, searched nearest-first.

PostgreSQL: pgvector, one partial HNSW index per vector length (inner product on L2-normalised vectors), searched
with `hnsw.iterative_scan` so the metadata filter (a set of files) applies inside the index scan; when the filter
is so narrow that the scan gives up early, an exact scan over just those files fills the result. New vectors are
written *pending* (`indexed = false`, outside the graph: a graph insert costs ~2 ms a row) and searched exactly,
filter applied, until the `index_vectors` job (jobs/ingest.py) adds them to the graph with `vectors_index_pending`.
SQLite: float32 BLOBs searched exactly in numpy from a per-process matrix per assistant and model (a filter is a
mask before the top-k, so it never starves); triggers bump a random generation on every write, which tells a
process its matrix is stale. Measured against sqlite-vec in docs/benchmarks.md. Imports nothing from rooms, review
or the API.
"""

from __future__ import annotations

import math
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
from django.db import connection, transaction

from .pending import fill_in_batches

TABLE = "assistant_chat_chunkvector"
# pgvector's HNSW index takes `vector` up to 2,000 dimensions and `halfvec` up to 4,000.
HNSW_VECTOR_MAX = 2000
HNSW_EF_SEARCH = 80
HNSW_MAX_SCAN_TUPLES = 20000
# A filter matching at most this many chunks is searched exactly (cheaper than walking the graph past the rest).
EXACT_BELOW = 4000
# Above that, exact or graph by cost: an exact scan reads the n filtered rows; the graph walk visits about N / n
# nodes (N: all the assistant's vectors) per row it keeps, each with its neighbours. Exact wins while n * n <= this
# times N: measured at N = 100,000 (docs/benchmarks.md), exact 13 ms and graph 19 ms at n = 10,000, 25 and 11 at
# n = 20,000, so the two cross near n = 12,500.
EXACT_CROSSOVER = 1500
# How many vectors a filter (and an assistant) has, remembered per process: counting 10,000 rows costs ~3 ms a
# question, and a room asks with the same filter every time. A stale count only picks the slower of two complete
# searches, never a wrong result.
COUNT_TTL = 30.0
COUNT_CACHE_SIZE = 512
# Pending vectors added to the HNSW graph per transaction by `vectors_index_pending`.
INDEX_BATCH = 1000


@dataclass(frozen=True)
class VectorHit:
    chunk_id: int
    file_pk: int
    similarity: float  # cosine similarity, -1..1


def _pg_type(dimensions: int) -> str:
    kind = "vector" if dimensions <= HNSW_VECTOR_MAX else "halfvec"
    return f"{kind}({int(dimensions)})"


def vectors_write(  # type: ignore[no-untyped-def]
    *, model: str, rows: Sequence[tuple[int, int, int]], matrix: np.ndarray, cursor=None, pending: bool = False
) -> None:
    """Store one vector per (chunk_id, assistant_id, file_id) row, made by `model`. Call inside the transaction
    that wrote the chunks. PostgreSQL gets one binary COPY (per-row INSERTs cost more than the HNSW insert); with
    `pending` the rows stay outside the HNSW graph (searched exactly) and the caller must queue the
    `index_vectors` job in the same transaction, which adds them to it. SQLite ignores `pending`."""
    if not rows:
        return
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    if matrix.shape[0] != len(rows):
        raise ValueError(f"{len(rows)} chunks but {matrix.shape[0]} vectors")
    dims = int(matrix.shape[1])
    own = cursor is None
    cursor = cursor or connection.cursor()
    try:
        if connection.vendor == "postgresql":
            _copy_postgresql(cursor, model, dims, rows, matrix, pending)
        else:
            cursor.executemany(
                f"INSERT INTO {TABLE} (chunk_id, assistant_id, file_id, model, dimensions, embedding) "  # noqa: S608
                "VALUES (%s, %s, %s, %s, %s, %s)",
                [(c, a, f, model, dims, matrix[i].tobytes()) for i, (c, a, f) in enumerate(rows)],
            )
    finally:
        if own:
            cursor.close()


def _copy_postgresql(  # type: ignore[no-untyped-def]
    cursor, model: str, dims: int, rows: Sequence[tuple[int, int, int]], matrix: np.ndarray, pending: bool
) -> None:
    # Binary COPY rows built by numpy: pgvector's binary form is int16 length, int16 unused, big-endian float4s.
    # Text formatting of 256 floats per row cost more than the rest of ingestion together.
    model_bytes = model.encode()
    n = len(rows)
    ids = np.asarray(rows, dtype=np.int64).reshape(n, 3)
    record = np.dtype(
        [
            ("fields", ">i2"),
            ("l1", ">i4"),
            ("chunk", ">i8"),
            ("l2", ">i4"),
            ("assistant", ">i8"),
            ("l3", ">i4"),
            ("file", ">i8"),
            ("l4", ">i4"),
            ("model", f"S{len(model_bytes)}"),
            ("l5", ">i4"),
            ("dims", ">i2"),
            ("l6", ">i4"),
            ("vdims", ">i2"),
            ("unused", ">i2"),
            ("values", ">f4", (dims,)),
            # Written only for pending rows (the column's default is true; migration 0011 writes before it exists).
            *([("l7", ">i4"), ("indexed", "u1")] if pending else []),
        ]  # fmt: skip
    )
    out = np.zeros(n, dtype=record)
    out["fields"] = 7 if pending else 6
    out["l1"], out["l2"], out["l3"] = 8, 8, 8
    out["chunk"], out["assistant"], out["file"] = ids[:, 0], ids[:, 1], ids[:, 2]
    out["l4"], out["model"] = len(model_bytes), model_bytes
    out["l5"], out["dims"] = 2, dims
    out["l6"], out["vdims"] = 4 + 4 * dims, dims
    out["values"] = matrix
    if pending:
        out["l7"], out["indexed"] = 1, 0
    data = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0) + out.tobytes() + struct.pack(">h", -1)
    raw = cursor.cursor if hasattr(cursor, "cursor") else cursor
    with raw.copy(
        f"COPY {TABLE} (chunk_id, assistant_id, file_id, model, dimensions, embedding{', indexed' if pending else ''}) "
        "FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.write(data)


def vectors_delete(*, assistant_id: int, keep_model: str) -> None:
    """Drop an assistant's vectors by any model but `keep_model` (after a re-embed switched to it)."""
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE assistant_id = %s AND model <> %s", [assistant_id, keep_model])  # noqa: S608


def vectors_index_pending(*, assistant_id: int | None = None, batch: int = INDEX_BATCH) -> int:
    """PostgreSQL: add pending vectors (of one assistant, or all) to the HNSW graph, `batch` rows a transaction,
    until none is left; returns how many. Safe to run concurrently (rows another run holds are skipped) and
    after a crash (a batch is all or nothing; the rest stay pending, and searchable)."""
    if connection.vendor != "postgresql":
        return 0
    return fill_in_batches(
        f"UPDATE {TABLE} SET indexed = true WHERE id IN (SELECT id FROM {TABLE} "  # noqa: S608
        "WHERE NOT indexed {scope} ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)",
        assistant_id=assistant_id,
        batch=batch,
    )


def vectors_pending_assistants() -> set[int]:
    """The assistants some of whose vectors wait for the HNSW graph (none on SQLite)."""
    from ..models import ChunkVector

    if connection.vendor != "postgresql":
        return set()
    return set(ChunkVector.objects.filter(indexed=False).order_by().values_list("assistant_id", flat=True).distinct())


def vectors_pending_count(*, assistant_id: int | None = None) -> int:
    """How many vectors wait for the HNSW graph (0 on SQLite, where none ever does)."""
    from ..models import ChunkVector

    if connection.vendor != "postgresql":
        return 0  # and no scan of an unindexed column for it (/metrics asks on every scrape)
    rows = ChunkVector.objects.filter(indexed=False)
    return (rows.filter(assistant_id=assistant_id) if assistant_id is not None else rows).count()


def ensure_index(dimensions: int) -> None:
    """PostgreSQL: make sure an HNSW index serves vectors of this length (migration 0011 made the 256 one)."""
    if connection.vendor != "postgresql":
        return
    dims = int(dimensions)
    kind = _pg_type(dims)
    ops = "vector_ip_ops" if kind.startswith("vector") else "halfvec_ip_ops"
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE INDEX IF NOT EXISTS assistant_chat_chunkvector_hnsw_{dims} ON {TABLE} "
            f"USING hnsw ((embedding::{kind}) {ops}) WITH (m = 16, ef_construction = 64) "
            f"WHERE dimensions = {dims} AND indexed"
        )


def vector_search(
    *,
    assistant_id: int,
    model: str,
    query: np.ndarray,
    file_pks: Collection[int] | None = None,
    limit: int = 16,
) -> list[VectorHit]:
    """The `limit` chunks nearest to `query` among the assistant's vectors by `model`, inside `file_pks`
    (None: every file; empty: nothing), nearest first. A filter never starves the result: whenever the
    files hold at least `limit` chunks, `limit` come back."""
    if limit <= 0 or (file_pks is not None and not file_pks):
        return []
    query = np.ascontiguousarray(query, dtype=np.float32).reshape(-1)
    if connection.vendor == "postgresql":
        return _search_postgresql(assistant_id, model, query, file_pks, limit)
    return _search_sqlite(assistant_id, model, query, file_pks, limit)


def _search_postgresql(
    assistant_id: int, model: str, query: np.ndarray, file_pks: Collection[int] | None, limit: int
) -> list[VectorHit]:
    dims = int(query.shape[0])
    kind = _pg_type(dims)
    literal = "[" + ",".join(f"{value:.7g}" for value in query.tolist()) + "]"
    pks = sorted(int(pk) for pk in file_pks) if file_pks is not None else None
    where = "v.assistant_id = %s AND v.model = %s AND v.dimensions = %s"
    params: list = [assistant_id, model, dims]
    if pks is not None:
        where += " AND v.file_id = ANY(%s)"
        params.append(pks)
    with transaction.atomic(), connection.cursor() as cursor:
        exact = pks is not None and _exact_cheaper(cursor, where, params)
        if not exact:
            # Iterative scan keeps walking the graph until `limit` rows pass the filter (or the tuple budget ends).
            cursor.execute(f"SET LOCAL hnsw.ef_search = {max(HNSW_EF_SEARCH, limit)}")
            cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            cursor.execute(f"SET LOCAL hnsw.max_scan_tuples = {HNSW_MAX_SCAN_TUPLES}")
            found = _pg_nearest(
                cursor, f"v.embedding::{kind}", f"%s::{kind}", where + " AND v.indexed", literal, params, limit
            )
            if len(found) >= limit:
                # Pending vectors (written since the job last ran) compete exactly, filter applied.
                pending = _pg_nearest(
                    cursor, "v.embedding", "%s::vector", where + " AND NOT v.indexed", literal, params, limit
                )
                merged = sorted(found + pending, key=lambda hit: (-hit.similarity, hit.chunk_id))
                return merged[:limit]
        # Exact: the expression differs from the index's, so the planner scans the filtered rows instead.
        return _pg_nearest(cursor, "v.embedding", "%s::vector", where, literal, params, limit)


def _exact_cheaper(cursor, where: str, params: list) -> bool:  # type: ignore[no-untyped-def]
    """Whether an exact scan of the filtered vectors (`where` ends with the filter, the last of `params`) costs
    less than a filtered walk of the graph."""
    total = _count(cursor, where.rsplit(" AND ", 1)[0], params[:-1])  # the assistant's, filter left out
    most = max(EXACT_BELOW, math.isqrt(EXACT_CROSSOVER * total))
    return _count(cursor, where, params, cap=most + 1) <= most


_counts: OrderedDict[tuple, tuple[float, int]] = OrderedDict()
_counts_lock = threading.Lock()


def _count(cursor, where: str, params: list, cap: int | None = None) -> int:  # type: ignore[no-untyped-def]
    """The vectors matching `where`, counted up to `cap` (a LIMIT stops the scan there)."""
    key = (connection.settings_dict.get("NAME"), where, cap, *(tuple(p) if isinstance(p, list) else p for p in params))
    now = time.monotonic()
    with _counts_lock:
        cached = _counts.get(key)
    if cached is not None and now - cached[0] < COUNT_TTL:
        return cached[1]
    limit = f" LIMIT {int(cap)}" if cap is not None else ""
    cursor.execute(f"SELECT count(*) FROM (SELECT 1 FROM {TABLE} v WHERE {where}{limit}) s", params)  # noqa: S608
    count = int(cursor.fetchone()[0])
    with _counts_lock:
        _counts[key] = (now, count)
        _counts.move_to_end(key)
        while len(_counts) > COUNT_CACHE_SIZE:
            _counts.popitem(last=False)
    return count


def _pg_nearest(cursor, column: str, probe: str, where: str, literal: str, params: list, limit: int) -> list[VectorHit]:  # type: ignore[no-untyped-def]
    # Materialised, then ordered again: relaxed_order may return rows slightly out of order.
    cursor.execute(
        f"WITH nearest AS MATERIALIZED (SELECT v.chunk_id, v.file_id, {column} <#> {probe} AS distance "  # noqa: S608
        f"FROM {TABLE} v WHERE {where} ORDER BY distance LIMIT %s) "
        "SELECT chunk_id, file_id, distance FROM nearest ORDER BY distance, chunk_id",
        [literal, *params, limit],
    )
    return [VectorHit(int(c), int(f), -float(d)) for c, f, d in cursor.fetchall()]


class _Matrix:
    """One assistant's vectors by one model, as loaded at one generation."""

    def __init__(self, generation: int | None, chunk_ids: np.ndarray, file_ids: np.ndarray, matrix: np.ndarray):
        self.generation = generation
        self.chunk_ids = chunk_ids
        self.file_ids = file_ids
        self.matrix = matrix


_cache: dict[tuple[str, int, str], _Matrix] = {}
_cache_lock = threading.Lock()


def _sqlite_matrix(cursor, assistant_id: int, model: str) -> _Matrix:  # type: ignore[no-untyped-def]
    cursor.execute("SELECT generation FROM assistant_chat_vector_generation WHERE assistant_id = %s", [assistant_id])
    row = cursor.fetchone()
    generation = row[0] if row else None
    key = (str(connection.settings_dict.get("NAME")), assistant_id, model)
    cached = _cache.get(key)
    if cached is not None and cached.generation == generation:
        return cached
    cursor.execute(
        f"SELECT chunk_id, file_id, embedding FROM {TABLE} WHERE assistant_id = %s AND model = %s",  # noqa: S608
        [assistant_id, model],
    )
    rows = cursor.fetchall()
    if rows:
        chunk_ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        file_ids = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
        matrix = np.frombuffer(b"".join(bytes(r[2]) for r in rows), dtype=np.float32).reshape(len(rows), -1)
    else:
        chunk_ids = file_ids = np.zeros(0, dtype=np.int64)
        matrix = np.zeros((0, 0), dtype=np.float32)
    loaded = _Matrix(generation, chunk_ids, file_ids, matrix)
    with _cache_lock:
        # One matrix per assistant and model: an older model's matrix (before a re-embed) is dropped.
        for other in [k for k in _cache if k[:2] == key[:2]]:
            del _cache[other]
        _cache[key] = loaded
    return loaded


def _search_sqlite(
    assistant_id: int, model: str, query: np.ndarray, file_pks: Collection[int] | None, limit: int
) -> list[VectorHit]:
    with connection.cursor() as cursor:
        loaded = _sqlite_matrix(cursor, assistant_id, model)
    if not len(loaded.chunk_ids) or loaded.matrix.shape[1] != query.shape[0]:
        return []
    if file_pks is not None:
        # The filter is a mask before the top-k: every matching chunk competes, none is lost to a cut-off.
        rows = np.flatnonzero(np.isin(loaded.file_ids, np.fromiter(file_pks, dtype=np.int64)))
        if not len(rows):
            return []
        scores = loaded.matrix[rows] @ query
    else:
        rows = None
        scores = loaded.matrix @ query
    k = min(limit, len(scores))
    top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    top = top[np.lexsort((top, -scores[top]))]
    positions = rows[top] if rows is not None else top
    return [
        VectorHit(int(loaded.chunk_ids[p]), int(loaded.file_ids[p]), float(s))
        for p, s in zip(positions, scores[top], strict=True)
    ]


def forget_cache() -> None:
    """Drop every loaded matrix and remembered count (tests, and a process that wants its memory back)."""
    with _cache_lock:
        _cache.clear()
    with _counts_lock:
        _counts.clear()
