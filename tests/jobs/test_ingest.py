"""The ingestion jobs on SQLite, queued durably and run in this process: ingestion indexes words and vectors as it
writes them, so it queues no indexing job; the indexing jobs, if queued anyway, succeed with nothing to do.
(tests/knowledge/test_words_pending_postgres.py runs them on PostgreSQL, where they have work.)"""

from __future__ import annotations

import pytest
from django.db import transaction
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from assistant_chat import services
from assistant_chat.jobs import ingest
from assistant_chat.jobs.kinds import enqueue
from assistant_chat.jobs.worker import run_here
from assistant_chat.knowledge.search import search_chunks

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def durable_jobs(settings) -> None:
    settings.JOBS_MODE = "worker"
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}


def test_sqlite_ingestion_queues_no_indexing_job_and_is_searchable_at_once() -> None:
    assistant = services.assistant_create(name="otters")
    file, _operation, job = services.file_upload(assistant=assistant, name="o.txt", data=b"Otters hold hands asleep.")
    assert run_here(str(job.job_id)) is True
    assert [row.task_path.rsplit(".", 1)[1] for row in DBTaskResult.objects.all()] == ["ingest_file"]
    assert [hit.file_pk for hit in search_chunks(assistant_id=assistant.pk, query="otters")] == [file.pk]


def test_indexing_jobs_on_sqlite_succeed_with_nothing_to_do_and_words_outrank_ingestion() -> None:
    assistant = services.assistant_create(name="empty")
    with transaction.atomic():
        ids = [enqueue(kind, assistant_id=assistant.pk) for kind in (ingest.index_vectors, ingest.index_words)]
    # Claimed in priority order: the words job first, though queued last.
    assert str(DBTaskResult.objects.ready().first().pk) == ids[1]
    assert ingest.index_words.priority > ingest.ingest_file.priority == ingest.index_vectors.priority
    for job_id in ids:
        assert run_here(str(job_id)) is True
    rows = DBTaskResult.objects.filter(pk__in=ids)
    assert [(row.status, row.return_value) for row in rows] == [(TaskResultStatus.SUCCESSFUL, 0)] * 2
