"""Pending tsvectors on PostgreSQL (migration 0017): ingestion writes chunks with `search_vector` NULL and queues the
`index_words` job, word search computes the pending rows' tsvectors meanwhile with the same scores, the job fills
them in batches, again and again harmlessly, and survives the file's deletion. Runs `manage.py shell` against a
database of its own, as the vector tests do."""

from __future__ import annotations

import json

import pytest

from tests.knowledge.test_vectors_postgres import database_url, manage  # noqa: F401  (the module's fixture)

pytestmark = pytest.mark.postgres

SCRIPT = r"""
import json
import threading
from django.db import connection, connections, transaction
from django.test.utils import override_settings
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult
from assistant_chat import services
from assistant_chat.jobs import ingest as ingest_jobs
from assistant_chat.jobs import recovery
from assistant_chat.jobs.worker import run_here
from assistant_chat.knowledge import search, vectors
from assistant_chat.knowledge.search import search_chunks
from assistant_chat.models import Chunk, ChunkVector, File

out = {}
fill = search.words_index_pending


def null_vectors(**where):
    return sorted(Chunk.objects.filter(**where).extra(where=["search_vector IS NULL"]).values_list("pk", flat=True))


def ranked(assistant, query, file_pks=None):
    return [[h.chunk_id, h.score] for h in search_chunks(assistant_id=assistant.pk, query=query, file_pks=file_pks, limit=50)]


# Ingestion with the words job held back: every chunk stays pending (NULL), as between a file's commit and its job.
search.words_index_pending = lambda **kwargs: 0
library = services.assistant_create(name="library")
documents = {f"filler{i}.txt": f"The quarterly report for region {i} covers sales, costs and shipping." for i in range(12)}
documents["report.txt"] = "The report, the report summary and the report appendix: report after report."
documents["zeppelin.txt"] = "A zeppelin is a rigid airship, and this report mentions it once. Shipping by airship."
for name, text in documents.items():
    services.file_upload(assistant=library, name=name, data=text.encode())[2].result(timeout=60)
search.words_index_pending = fill
names = dict(File.objects.filter(assistant=library).values_list("pk", "name"))
out["pending_after_ingest"] = search.words_pending_count(assistant_id=library.pk)
out["chunks"] = Chunk.objects.filter(assistant=library).count()

other = services.assistant_create(name="other")
services.file_upload(assistant=other, name="zeppelin.txt", data=b"zeppelin zeppelin zeppelin report")[2].result(timeout=60)
out["other_pending"] = search.words_pending_count(assistant_id=other.pk)  # its job ran: filled

queries = ["zeppelin report", "shipping airship", "quarterly costs region", "report"]
fillers = {pk for pk, name in names.items() if name.startswith("filler")}
some = {pk for pk, name in names.items() if name in ("zeppelin.txt", "filler3.txt")}
pending = {q: [ranked(library, q), ranked(library, q, fillers), ranked(library, q, some)] for q in queries}
out["pending_first"] = names[search_chunks(assistant_id=library.pk, query="zeppelin report", limit=1)[0].file_pk]
out["pending_filtered_files"] = sorted({names[pk] for q in queries for pk in
    [h.file_pk for h in search_chunks(assistant_id=library.pk, query=q, file_pks=some, limit=50)]})
out["pending_scoped"] = all(
    h.file_pk in names for q in queries for h in search_chunks(assistant_id=library.pk, query=q, limit=50)
)

# A batch is all or nothing: a transaction that fills and then fails leaves every row pending (and searchable).
try:
    with transaction.atomic():
        fill(assistant_id=library.pk, batch=4)
        raise RuntimeError("crash")
except RuntimeError:
    pass
out["pending_after_rollback"] = search.words_pending_count(assistant_id=library.pk)

# Rows another transaction holds (a file being deleted) are skipped, not waited for; the rest are filled.
zeppelin = File.objects.get(assistant=library, name="zeppelin.txt")
held, release = threading.Event(), threading.Event()


def delete_slowly():
    with transaction.atomic():
        Chunk.objects.filter(file=zeppelin).delete()
        held.set()
        release.wait(30)
        transaction.set_rollback(True)  # the deletion is abandoned: the rows come back, still pending
    connections.close_all()


deleter = threading.Thread(target=delete_slowly)
deleter.start()
held.wait(30)
out["filled_around_a_held_file"] = fill(assistant_id=library.pk, batch=4)
out["left_pending"] = null_vectors(assistant=library)
out["zeppelin_chunks"] = sorted(Chunk.objects.filter(file=zeppelin).values_list("pk", flat=True))
release.set()
deleter.join()

# The job (as a worker runs it) fills what is left, and is idempotent.
with transaction.atomic():
    ingest_jobs.enqueue(ingest_jobs.index_words, assistant_id=library.pk)  # immediate mode: runs on commit
out["pending_after_job"] = search.words_pending_count(assistant_id=library.pk)
out["again"] = fill(assistant_id=library.pk)
filled = {q: [ranked(library, q), ranked(library, q, fillers), ranked(library, q, some)] for q in queries}
out["same_scores"] = filled == pending
out["nonempty"] = all(lists[0] for lists in filled.values())
with connection.cursor() as cursor:
    cursor.execute(
        "SELECT count(*) FROM assistant_chat_chunk WHERE assistant_id = %s "
        "AND search_vector IS DISTINCT FROM to_tsvector('english', text)",
        [library.pk],
    )
    out["differs_from_expression"] = cursor.fetchone()[0]

# Outside ingestion a chunk gets its tsvector with the row (the trigger), and a changed text gets a new one.
late = Chunk.objects.create(file=zeppelin, assistant=library, ordinal=99, text="A dirigible over the harbour.")
out["orm_insert_pending"] = null_vectors(pk=late.pk)
out["dirigible"] = [h.chunk_id for h in search_chunks(assistant_id=library.pk, query="dirigible", limit=5)]
Chunk.objects.filter(pk=late.pk).update(text="A blimp over the harbour.")
out["after_edit"] = [
    [h.chunk_id for h in search_chunks(assistant_id=library.pk, query=word, limit=5)] for word in ("dirigible", "blimp")
]
out["late"] = late.pk
try:
    search.words_defer()
    out["defer_outside_transaction"] = "allowed"
except RuntimeError:
    out["defer_outside_transaction"] = "refused"

# A file deleted while its index_words job is queued: the job still succeeds, and has nothing to do. The job is
# claimed before ingestion queued earlier (its priority), so the pending set stays about one file large.
tasks = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}
with override_settings(JOBS_MODE="worker", TASKS=tasks):
    services.file_upload(assistant=library, name="waiting.txt", data=b"Queued before the other file.")
    deleted, _operation, job = services.file_upload(assistant=library, name="gone.txt", data=b"Ephemeral words here.")
    run_here(job.job_id)  # gone.txt's ingestion, which queues the two indexing jobs
    queued = {row.task_path.rsplit(".", 1)[1]: row for row in DBTaskResult.objects.filter(status=TaskResultStatus.READY)}
    out["queued"] = sorted(queued)
    out["gone_pending"] = len(null_vectors(file=deleted))
    out["claimed_first"] = DBTaskResult.objects.ready().first().task_path.rsplit(".", 1)[1]
    services.file_delete(file=deleted)
    services.file_purge(file=deleted)
    out["ran"] = run_here(str(queued["index_words"].pk))
    row = DBTaskResult.objects.get(pk=queued["index_words"].pk)
    out["job_outcome"] = [row.status == TaskResultStatus.SUCCESSFUL, row.return_value]
    for _ in range(10):  # the rest of the queue, in the order a worker takes it
        row = DBTaskResult.objects.ready().first()
        if row is None:
            break
        run_here(str(row.pk))
    out["waiting"] = File.objects.get(assistant=library, name="waiting.txt").status

    # Rows left pending with no job (theirs gave up): reconcile queues one job per kind and assistant, once.
    with connection.cursor() as cursor:
        cursor.execute("UPDATE assistant_chat_chunk SET search_vector = NULL WHERE assistant_id = %s", [library.pk])
    ChunkVector.objects.filter(assistant=library).update(indexed=False)
    out["reconciled"] = [recovery.reconcile_indexing(), recovery.reconcile_indexing()]
    out["reconcile_queued"] = sorted(
        [row.task_path.rsplit(".", 1)[1], row.args_kwargs["kwargs"]["assistant_id"] == library.pk]
        for row in DBTaskResult.objects.filter(status=TaskResultStatus.READY)
    )
    for _ in range(10):
        row = DBTaskResult.objects.ready().first()
        if row is None:
            break
        run_here(str(row.pk))
    out["reconciled_pending"] = [search.words_pending_count(), vectors.vectors_pending_count()]
    out["reconciled_again"] = recovery.reconcile_indexing()
out["pending_at_end"] = search.words_pending_count()


# The job leaves the GIN index's pending list empty (searches would scan it); without its flush the list is not.
def gin_flushed_pages():
    with connection.cursor() as cursor:
        cursor.execute("SELECT gin_clean_pending_list('assistant_chat_chunk_search_gin'::regclass)")
        return cursor.fetchone()[0]


def refill(flush):
    gin_flushed_pages()
    Chunk.objects.filter(assistant=library).update(text="Shipping by zeppelin: report.")  # new entries, in the list
    with connection.cursor() as cursor:
        cursor.execute("UPDATE assistant_chat_chunk SET search_vector = NULL WHERE assistant_id = %s", [library.pk])
    saved = search._gin_flush
    search._gin_flush = saved if flush else lambda: None
    try:
        filled = fill(assistant_id=library.pk)
    finally:
        search._gin_flush = saved
    return [filled > 0, gin_flushed_pages()]


out["gin_list_without_flush"] = refill(flush=False)
out["gin_list_after_job"] = refill(flush=True)
with connection.cursor() as cursor:
    cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'assistant_chat_chunk_words_pending'")
    out["pending_index"] = cursor.fetchone()[0]
    cursor.execute("SET enable_seqscan = off")
    cursor.execute("EXPLAIN SELECT id FROM assistant_chat_chunk WHERE search_vector IS NULL AND assistant_id = 1")
    out["pending_plan"] = "\n".join(row[0] for row in cursor.fetchall())
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def result(database_url: str) -> dict:  # noqa: F811
    manage(database_url, "migrate", "--no-input")
    return json.loads(manage(database_url, "shell", "-c", SCRIPT).split("RESULT ", 1)[1])


def test_ingestion_leaves_tsvectors_pending_and_word_search_finds_them_ranked_as_once_filled(result: dict) -> None:
    assert result["chunks"] == 14 and result["pending_after_ingest"] == 14
    assert result["other_pending"] == 0  # its index_words job ran after its ingestion (immediate mode)
    assert result["pending_first"] == "zeppelin.txt"  # the rare word first, as with filled rows
    assert result["same_scores"] is True  # every query, with and without filters: same ids, same scores
    assert result["nonempty"] is True
    assert result["differs_from_expression"] == 0  # the job stored exactly what the search computed


def test_the_filter_and_the_assistant_scope_apply_to_pending_chunks(result: dict) -> None:
    assert result["pending_filtered_files"] == ["filler3.txt", "zeppelin.txt"]
    assert result["pending_scoped"] is True  # the other assistant's zeppelin chunk never came back


def test_filling_is_all_or_nothing_per_batch_skips_held_rows_and_is_idempotent(result: dict) -> None:
    assert result["pending_after_rollback"] == 14
    # 13 filled in batches of 4 while another transaction held zeppelin.txt's chunk, which stayed pending.
    assert result["filled_around_a_held_file"] == 13
    assert result["left_pending"] == result["zeppelin_chunks"] and len(result["left_pending"]) == 1
    assert result["pending_after_job"] == 0 and result["again"] == 0


def test_chunks_written_outside_ingestion_or_edited_get_their_tsvector_at_once(result: dict) -> None:
    assert result["orm_insert_pending"] == []
    assert result["dirigible"] == [result["late"]]
    assert result["after_edit"] == [[], [result["late"]]]
    assert result["defer_outside_transaction"] == "refused"


def test_the_words_job_runs_before_queued_ingestion_and_survives_its_file_being_deleted(result: dict) -> None:
    assert result["queued"] == ["index_vectors", "index_words", "ingest_file"]
    assert result["gone_pending"] == 1
    assert result["claimed_first"] == "index_words"  # queued last, claimed first
    assert result["ran"] is True
    assert result["job_outcome"] == [True, 0]
    assert result["waiting"] == "Available" and result["pending_at_end"] == 0  # its own job filled its chunk
    assert "WHERE (search_vector IS NULL)" in result["pending_index"]
    assert result["gin_list_without_flush"][0] is True and result["gin_list_without_flush"][1] > 0
    assert result["gin_list_after_job"] == [True, 0]  # nothing left in the list for searches to scan
    assert "assistant_chat_chunk_words_pending" in result["pending_plan"]


def test_rows_left_pending_without_a_job_get_one_job_per_kind_which_indexes_them(result: dict) -> None:
    assert result["reconciled"] == [2, 0]  # the second pass finds both jobs queued
    assert result["reconcile_queued"] == [["index_vectors", True], ["index_words", True]]
    assert result["reconciled_pending"] == [0, 0]
    assert result["reconciled_again"] == 0
