"""The queue in the admin: staff see each job's kind, file, attempts and failure; workers with their heartbeats;
failed jobs can be run again; members who are not staff see nothing."""

from __future__ import annotations

import os

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from assistant_chat import services
from assistant_chat.jobs.models import WorkerHeartbeat
from tests.jobs.test_recovery import DATABASE_TASKS

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def durable_jobs(settings) -> None:
    settings.JOBS_MODE = "worker"
    settings.TASKS = DATABASE_TASKS


def staff_client() -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("boss", password="pw-boss-123"))
    return client


def test_staff_see_the_queue_and_the_workers() -> None:
    assistant = services.assistant_create(name="shelf")
    services.file_upload(assistant=assistant, name="otters.txt", data=b"Otters float.")
    DBTaskResult.objects.update(
        status=TaskResultStatus.FAILED, worker_ids=["run-1"], traceback="Traceback...\nRuntimeError: disk on fire"
    )
    WorkerHeartbeat.objects.create(
        worker_id="run-1", host="here", pid=os.getpid(), started_at=timezone.now(), beat_at=timezone.now()
    )
    client = staff_client()
    page = client.get("/admin/django_tasks_database/dbtaskresult/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "file otters.txt" in text and "ingest" in text and "1 of 3" in text and "RuntimeError: disk on fire" in text
    workers = client.get("/admin/jobs/workerheartbeat/")
    assert workers.status_code == 200 and "run-1" in workers.content.decode()

    job = DBTaskResult.objects.get()
    response = client.post(
        "/admin/django_tasks_database/dbtaskresult/",
        {"action": "run_again", "_selected_action": [str(job.pk)]},
    )
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == TaskResultStatus.READY and job.worker_ids == []


def test_members_who_are_not_staff_never_see_the_queue() -> None:
    client = Client()
    client.force_login(get_user_model().objects.create_user("member", password="pw-member-123"))
    response = client.get("/admin/django_tasks_database/dbtaskresult/")
    assert response.status_code == 302 and "/login/" in response["Location"]
