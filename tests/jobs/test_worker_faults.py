"""Accepted uploads survive the processes dying: the worker SIGKILLed mid-ingestion, Daphne SIGKILLed while it
holds an upload's response; and chunks whose indexing job gave up (the database refused its writes) are indexed
once it takes them again. Real servers (Daphne + worker subprocesses) on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.jobs.helpers import big_markdown, create_assistant, expected_chunks, file_state, upload, wait_for
from tests.support import servers

pytestmark = pytest.mark.faults


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[servers.LiveServer]:
    """A server of its own (its processes get killed). A test marked `upload_wait(seconds)` sets how long an
    upload's response waits for processing (long: a response that can be cut; zero: answered at once)."""
    database_url = ""
    if request.param == "postgres":
        servers.require(servers.postgres_available())
        database_url = servers.create_postgres_database()
    wait = request.node.get_closest_marker("upload_wait")
    env = {"INGEST_UPLOAD_WAIT_SECONDS": str(wait.args[0] if wait else 0)}
    server = servers.start_server(tmp_path, database_url=database_url, extra_env=env)
    create_assistant(server)
    yield server
    server.stop()
    if database_url:
        servers.drop_postgres_database(database_url)


def assert_ingested_once(server: servers.LiveServer, name: str, data: bytes) -> None:
    def finished() -> dict | None:
        state = file_state(server, name)
        done = state and state["status"] != "Processing"
        return state if done and all(job not in ("READY", "RUNNING") for job, _ in state["jobs"]) else None

    state = wait_for(finished, 180, f"{name} and its job to finish")
    assert state["status"] == "Available", (state, server.worker_log())
    assert state["operations"] == ["Completed"]
    expected = expected_chunks(data, name)
    assert state["chunks"] == state["distinct_ordinals"] == expected  # no chunk twice, none missing
    assert [status for status, _workers in state["jobs"]] == ["SUCCESSFUL"]


def test_worker_killed_mid_ingestion_finishes_the_file_after_restart(fresh_server: servers.LiveServer) -> None:
    server = fresh_server
    data = big_markdown()
    response = upload(server, "big.md", data)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "Processing"
    # The worker has the job and has started writing progress: kill it there.
    wait_for(lambda: (s := file_state(server, "big.md")) and s["jobs"] and s["jobs"][0][0] == "RUNNING", 60, "the job")
    wait_for(lambda: _percent(server, "big.md") > 0, 60, "progress", pause=0.05)
    server.kill_worker(signal.SIGKILL)
    killed = file_state(server, "big.md")
    assert killed["status"] == "Processing", "the kill came too late to test anything"
    assert killed["jobs"][0][0] == "RUNNING"  # left claimed by a dead worker

    server.start_worker()  # same worker id: it takes back what it was running at once
    assert_ingested_once(server, "big.md", data)
    state = file_state(server, "big.md")
    assert len(state["jobs"][0][1]) == 2  # two attempts, both by this worker id
    operation = httpx.get(
        f"{server.url}/assistant/files/jobs/{state['file_id']}",
        headers={"Api-Key": server.api_key},
        timeout=30,
    ).json()
    assert operation["status"] == "Available"


def _percent(server: servers.LiveServer, name: str) -> float:
    from tests.jobs.helpers import query

    rows = query(server, "SELECT percent_done FROM assistant_chat_file WHERE name = %s", (name,))
    return float(rows[0][0]) if rows else 0.0


@pytest.mark.upload_wait(30)
def test_daphne_killed_while_holding_the_upload_response_loses_nothing(fresh_server: servers.LiveServer) -> None:
    server = fresh_server
    server.kill_worker(signal.SIGTERM)  # nothing processes the upload while Daphne lives: only the row can save it
    data = big_markdown(2_000_000, seed=5)
    outcome: dict = {}

    def send() -> None:
        try:
            outcome["response"] = upload(server, "held.md", data)
        except httpx.HTTPError as exc:
            outcome["error"] = exc

    client = threading.Thread(target=send)
    client.start()
    # The upload is stored and Daphne is waiting (INGEST_UPLOAD_WAIT_SECONDS) before it answers: kill it now.
    wait_for(lambda: file_state(server, "held.md"), 60, "the upload to be stored")
    server.kill_daphne(signal.SIGKILL)
    client.join(30)
    assert "error" in outcome, "the response should have been cut"
    assert file_state(server, "held.md")["status"] == "Processing"

    server.restart_daphne()
    server.start_worker()
    assert_ingested_once(server, "held.md", data)


# The database refuses the `index_words` job's writes (as a full disk or a failing statement would) on every one
# of its attempts: the job gives up. Its chunks stay pending (searchable, slower) until the fault clears; then the
# worker's reconcile queues the job again, with no new upload and no restart.
REFUSE_WORDS = """
CREATE FUNCTION refuse_words() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.search_vector IS NULL AND NEW.search_vector IS NOT NULL THEN
        RAISE EXCEPTION 'injected fault: the database refuses this write';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_words BEFORE UPDATE ON assistant_chat_chunk FOR EACH ROW EXECUTE FUNCTION refuse_words();
"""


def _execute(server: servers.LiveServer, sql: str) -> None:
    import psycopg

    with psycopg.connect(server.env["DATABASE_URL"], autocommit=True) as connection:
        connection.execute(sql)


def _words_jobs(server: servers.LiveServer) -> list[tuple[str, int]]:
    from tests.jobs.helpers import query

    rows = query(
        server,
        "SELECT status, worker_ids FROM django_tasks_database_dbtaskresult WHERE task_path LIKE %s"
        " ORDER BY enqueued_at",
        ("%.index_words",),
    )
    return [(status, len(ids if isinstance(ids, list) else json.loads(ids))) for status, ids in rows]


def _words_pending(server: servers.LiveServer) -> int:
    from tests.jobs.helpers import query

    return int(query(server, "SELECT count(*) FROM assistant_chat_chunk WHERE search_vector IS NULL")[0][0])


def _pending_metric(server: servers.LiveServer) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    response = httpx.get(server.url + "/metrics", timeout=10)  # loopback may read it
    assert response.status_code == 200, response.text
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == "chat_index_pending_rows" and sample.labels == {"index": "words"}:
                return sample.value
    raise AssertionError("no chat_index_pending_rows{index=words} in /metrics")


@pytest.mark.postgres
def test_chunks_whose_words_job_gave_up_are_indexed_once_the_database_takes_writes_again(tmp_path: Path) -> None:
    servers.require(servers.postgres_available())
    database_url = servers.create_postgres_database()
    env = {"INGEST_UPLOAD_WAIT_SECONDS": "0", "JOBS_RETRY_DELAY_SECONDS": "0.2", "JOBS_RECONCILE_SECONDS": "1"}
    server = servers.start_server(tmp_path, database_url=database_url, extra_env=env)
    try:
        create_assistant(server)
        _execute(server, REFUSE_WORDS)
        data = big_markdown(60_000, seed=9)
        assert upload(server, "refused.md", data).status_code == 202
        gave_up = wait_for(
            lambda: [job for job in _words_jobs(server) if job == ("FAILED", 3)], 60, "the words job to give up"
        )
        assert gave_up, server.worker_log()
        assert file_state(server, "refused.md")["status"] == "Available"  # the file is searchable meanwhile
        pending = expected_chunks(data, "refused.md")
        assert _words_pending(server) == pending  # none lost, none indexed
        assert _pending_metric(server) == pending  # what an operator's alert reads

        _execute(server, "DROP TRIGGER refuse_words ON assistant_chat_chunk")
        wait_for(lambda: _words_pending(server) == 0, 60, "the pending chunks to be indexed")
        # The rows are committed before the worker records the job's result: wait for that record.
        jobs = wait_for(
            lambda: (jobs := _words_jobs(server)) and any(status == "SUCCESSFUL" for status, _ in jobs[1:]) and jobs,
            30,
            "a job the reconcile queued to succeed",
        )
        assert jobs[0] == ("FAILED", 3)  # the one ingestion queued gave up for good
        assert any(status == "SUCCESSFUL" for status, _attempts in jobs[1:])  # one the reconcile queued did it
        assert "indexing job(s) for pending rows that had none" in server.worker_log()
        assert _pending_metric(server) == 0
    finally:
        server.stop()
        servers.drop_postgres_database(database_url)
