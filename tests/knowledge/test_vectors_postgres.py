"""The vector index on PostgreSQL with pgvector: HNSW with iterative scans under a filter, the exact fallback,
ingestion's binary COPY and hybrid search. Runs `manage.py` against a database of its own (migrated from empty),
since the unit tests' Django connection is SQLite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.support import servers
from tests.support.servers import require

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json
import time
import numpy as np
from django.db import connection
from assistant_chat import services
from assistant_chat.knowledge import vectors
from assistant_chat.knowledge.hybrid import search
from assistant_chat.models import Assistant, Chunk, ChunkVector, File

out = {}
assistant = Assistant.objects.create(name="pg")
files = [File.objects.create(assistant=assistant, name=f"f{i}.txt", kind="txt", status="Available") for i in range(40)]
chunks = Chunk.objects.bulk_create(
    [Chunk(file=f, assistant=assistant, ordinal=o, text=f"chunk {o}") for f in files for o in range(50)]
)
rng = np.random.default_rng(7)
matrix = rng.standard_normal((len(chunks), 256)).astype(np.float32)
matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
vectors.vectors_write(model="offline", rows=[(c.pk, assistant.pk, c.file_id) for c in chunks], matrix=matrix)
stored = ChunkVector.objects.filter(assistant=assistant).count()
with connection.cursor() as cursor:
    cursor.execute("SELECT embedding::text FROM assistant_chat_chunkvector WHERE chunk_id = %s", [chunks[5].pk])
    first = np.asarray(json.loads(cursor.fetchone()[0]), dtype=np.float32)
    cursor.execute("ANALYZE assistant_chat_chunkvector")
out["stored"] = stored
out["roundtrip"] = bool(np.allclose(first, matrix[5], atol=1e-6))

query = matrix[0]  # a chunk of file 0; the filter asks for file 37, far from it
target = files[37].pk
in_target = [i for i, c in enumerate(chunks) if c.file_id == target]
exact = sorted(in_target, key=lambda i: -float(matrix[i] @ query))[:10]
expected = [chunks[i].pk for i in exact]


def run(**overrides):
    saved = {name: getattr(vectors, name) for name in overrides}
    for name, value in overrides.items():
        setattr(vectors, name, value)
    try:
        hits = vectors.vector_search(assistant_id=assistant.pk, model="offline", query=query, file_pks={target}, limit=10)
    finally:
        for name, value in saved.items():
            setattr(vectors, name, value)
    return [h.chunk_id for h in hits], sorted({h.file_pk for h in hits})


GRAPH = {"EXACT_BELOW": 0, "EXACT_CROSSOVER": 0}                # never exact by count: the graph is walked
out["hnsw"] = run(**GRAPH)                                     # iterative scan inside the index
out["starved_then_exact"] = run(**GRAPH, HNSW_MAX_SCAN_TUPLES=1)  # the scan gives up; exact fills in
out["exact"] = run()                                          # 50 chunks: exact from the start

from django.test.utils import CaptureQueriesContext


def path(file_pks, **overrides):
    saved = {name: getattr(vectors, name) for name in overrides}
    for name, value in overrides.items():
        setattr(vectors, name, value)
    try:
        with CaptureQueriesContext(connection) as queries:
            vectors.vector_search(assistant_id=assistant.pk, model="offline", query=query, file_pks=file_pks, limit=10)
    finally:
        for name, value in saved.items():
            setattr(vectors, name, value)
    walked = any("hnsw.iterative_scan" in q["sql"] for q in queries.captured_queries)
    counted = sum("count(*)" in q["sql"] for q in queries.captured_queries)
    return ["graph" if walked else "exact", counted]


vectors.forget_cache()
every_file = {f.pk for f in files}
# By cost, over 2,000 vectors: exact up to sqrt(1500 * 2000) = 1732 of them; 50 are exact, all 2,000 walk the graph.
out["paths"] = [
    path({target}, EXACT_BELOW=0),
    path({target}, EXACT_BELOW=0),  # the counts are remembered: no count query the second time
    path(every_file, EXACT_BELOW=0),
    path(set(list(every_file)[:30]), EXACT_BELOW=0),  # 1,500 vectors: still exact
]
out["expected"] = expected
out["target"] = target
unfiltered = vectors.vector_search(assistant_id=assistant.pk, model="offline", query=query, limit=5)
out["unfiltered_first"] = unfiltered[0].chunk_id
out["chunk0"] = chunks[0].pk

with connection.cursor() as cursor:
    cursor.execute("SET enable_seqscan = off")
    cursor.execute(
        "EXPLAIN SELECT chunk_id FROM assistant_chat_chunkvector v WHERE v.assistant_id = %s AND v.model = 'offline' "
        "AND v.dimensions = 256 AND v.indexed ORDER BY v.embedding::vector(256) <#> %s::vector(256) LIMIT 10",
        [assistant.pk, "[" + ",".join(str(x) for x in query.tolist()) + "]"],
    )
    out["plan"] = "\n".join(row[0] for row in cursor.fetchall())

# Pending vectors (ingestion writes them so): outside the graph, found exactly, with and without a filter, until
# the indexing pass adds them to the graph.
late = File.objects.create(assistant=assistant, name="late.txt", kind="txt", status="Available")
late_chunks = Chunk.objects.bulk_create([Chunk(file=late, assistant=assistant, ordinal=o, text=f"late {o}") for o in range(5)])
late_matrix = rng.standard_normal((5, 256)).astype(np.float32)
late_matrix /= np.linalg.norm(late_matrix, axis=1, keepdims=True)
vectors.vectors_write(
    model="offline", rows=[(c.pk, assistant.pk, late.pk) for c in late_chunks], matrix=late_matrix, pending=True
)
out["pending_before"] = vectors.vectors_pending_count(assistant_id=assistant.pk)


def nearest(probe, file_pks=None):
    return [h.chunk_id for h in vectors.vector_search(
        assistant_id=assistant.pk, model="offline", query=probe, file_pks=file_pks, limit=10
    )]


out["pending_hits"] = [nearest(late_matrix[2])[0], nearest(late_matrix[3], {late.pk, target})[0]]
out["pending_filtered_out"] = late_chunks[2].pk in nearest(late_matrix[2], {target})
out["late_ids"] = [late_chunks[2].pk, late_chunks[3].pk]
out["indexed_rows"] = vectors.vectors_index_pending(assistant_id=assistant.pk, batch=2)
out["pending_after"] = vectors.vectors_pending_count(assistant_id=assistant.pk)
out["hits_after"] = [nearest(late_matrix[2])[0], nearest(late_matrix[3], {late.pk, target})[0]]

handbook = services.assistant_create(name="handbook")
for name, data in [
    ("pets.txt", b"Pets are not permitted on company premises. Guide animals are the only exception."),
    ("parking.txt", b"Staff may park in the north lot after obtaining a permit from reception."),
]:
    services.file_upload(assistant=handbook, name=name, data=data)[2].result(timeout=60)
hits = search(assistant=handbook, query="Can I bring my dog to work?")
out["paraphrase"] = File.objects.get(pk=hits[0].file_pk).name
out["lexical"] = len(search(assistant=handbook, query="Can I bring my dog to work?", mode="lexical"))
# Outside a transaction the vector search runs on a search thread's own connection while the word search runs on
# this one; inside one, here (the other connection would not see uncommitted rows). Same hits either way.
import threading
from django.conf import settings as django_settings
from django.db import transaction
from assistant_chat.knowledge import hybrid, overlap

ran_on = []
meaning = hybrid._meaning


def traced(*args):
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        ran_on.append([threading.current_thread().name.startswith("search"), cursor.fetchone()[0]])
    return meaning(*args)


def connections_open():
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return cursor.fetchone()[0]


hybrid._meaning = traced
questions = ["Can I bring my dog to work?", "where do staff park", "guide animals", "permit from reception"]
overlapped = [[(h.chunk_id, h.score) for h in search(assistant=handbook, query=q)] for q in questions]
with connection.cursor() as cursor:
    cursor.execute("SELECT pg_backend_pid()")
    own_pid = cursor.fetchone()[0]
with transaction.atomic():
    search(assistant=handbook, query=questions[0])
django_settings.SEARCH_THREADS = 0
in_sequence = [[(h.chunk_id, h.score) for h in search(assistant=handbook, query=q)] for q in questions]
django_settings.SEARCH_THREADS = 2
hybrid._meaning = meaning
out["overlap_same_hits"] = overlapped == in_sequence and all(overlapped)
out["overlap_threads"] = [[on_thread, pid != own_pid] for on_thread, pid in ran_on]
before = connections_open()
overlap.shutdown()
# A closed connection's backend leaves pg_stat_activity a moment later (slower on a busy machine): wait for it.
deadline = time.monotonic() + 10
while connections_open() >= before and time.monotonic() < deadline:
    time.sleep(0.05)
out["overlap_connections_closed"] = before - connections_open()
# Ingestion wrote the handbook's vectors pending and queued the indexing job (run at once in immediate mode).
out["handbook_pending"] = vectors.vectors_pending_count(assistant_id=handbook.pk)
out["handbook_vectors"] = ChunkVector.objects.filter(assistant=handbook).count()
# Chunks written by ingestion's COPY: ids from the sequence, the lexical index filled, a later ORM insert still works.
handbook_chunks = Chunk.objects.filter(assistant=handbook).order_by("file__name")
out["handbook_chunks"] = [[c.file.name, c.ordinal, c.pages, c.tokens > 0, c.text[:10]] for c in handbook_chunks]
out["permit"] = [File.objects.get(pk=h.file_pk).name for h in search(assistant=handbook, query="reception", mode="lexical")]
extra = Chunk.objects.create(file=handbook_chunks[0].file, assistant=handbook, ordinal=99, text="later")
out["later_id_above"] = extra.pk > max(c.pk for c in handbook_chunks)
with connection.cursor() as cursor:
    cursor.execute(
        "SELECT attstorage FROM pg_attribute WHERE attrelid = 'assistant_chat_chunk'::regclass AND attname = 'search_vector'"
    )
    out["search_vector_storage"] = cursor.fetchone()[0]
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def database_url():
    require(servers.postgres_available())
    url = servers.create_postgres_database()
    yield url
    servers.drop_postgres_database(url)


def manage(database_url: str, *args: str) -> str:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_SECRET_KEY": "test-" + uuid.uuid4().hex,
        "JOBS_MODE": "immediate",
        "REDIS_URL": "",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def result(database_url: str) -> dict:
    manage(database_url, "migrate", "--no-input")
    out = manage(database_url, "shell", "-c", SCRIPT)
    return json.loads(out.split("RESULT ", 1)[1])


def test_pgvector_search_filters_inside_the_index_and_never_starves(result: dict) -> None:
    assert result["stored"] == 2000 and result["roundtrip"]
    for path in ("hnsw", "starved_then_exact", "exact"):
        ids, files = result[path]
        assert len(ids) == 10, path  # a filter matching 50 of 2,000 chunks still gives k results
        assert files == [result["target"]], path
    assert result["exact"][0] == result["expected"]
    assert result["starved_then_exact"][0] == result["expected"]
    assert len(set(result["hnsw"][0]) & set(result["expected"])) >= 8  # approximate, but close
    assert result["unfiltered_first"] == result["chunk0"]
    assert "assistant_chat_chunkvector_hnsw_256" in result["plan"]
    assert result["paraphrase"] == "pets.txt" and result["lexical"] == 0


def test_a_filtered_search_scans_exactly_while_that_costs_less_than_walking_the_graph(result: dict) -> None:
    # [path, count queries]: the assistant's and the filter's counts, then none while they are remembered.
    assert result["paths"] == [["exact", 2], ["exact", 0], ["graph", 1], ["exact", 1]]


def test_hybrid_search_runs_its_vector_half_on_another_connection_outside_a_transaction(result: dict) -> None:
    assert result["overlap_same_hits"] is True
    # Four searches on a search thread's connection, one inside a transaction on the caller's, four in sequence.
    assert result["overlap_threads"] == [[True, True]] * 4 + [[False, False]] * 5
    assert result["overlap_connections_closed"] >= 1  # shutdown closes the search threads' connections


def test_pending_vectors_are_searched_exactly_until_the_indexing_job_adds_them_to_the_graph(result: dict) -> None:
    assert result["pending_before"] == 5
    assert result["pending_hits"] == result["late_ids"]  # nearest to themselves, with and without a filter
    assert result["pending_filtered_out"] is False  # the filter applies to pending rows too
    assert result["indexed_rows"] == 5 and result["pending_after"] == 0  # in batches of 2, until none is left
    assert result["hits_after"] == result["late_ids"]
    assert result["handbook_vectors"] == 2 and result["handbook_pending"] == 0


def test_ingestion_copies_chunks_with_sequence_ids_and_the_lexical_index_filled(result: dict) -> None:
    assert result["handbook_chunks"] == [
        ["parking.txt", 0, [], True, "Staff may "],
        ["pets.txt", 0, [], True, "Pets are n"],
    ]
    assert result["permit"] == ["parking.txt"]
    assert result["later_id_above"] is True
    # The ranking reads each candidate's tsvector: kept in the row (storage MAIN), not fetched from TOAST per term.
    assert result["search_vector_storage"] == "m"
