"""Accepted uploads survive the processes dying: the worker SIGKILLed mid-ingestion, Daphne SIGKILLed while it
holds an upload's response. Real servers (Daphne + worker subprocesses) on SQLite and PostgreSQL."""

from __future__ import annotations

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
