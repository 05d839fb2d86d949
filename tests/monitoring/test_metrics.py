"""/metrics: one scrape of any Daphne process reports every process (Daphne and the worker), with the room,
turn, job and ingestion metrics; only for the allowed networks or a client with the token."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.rooms.test_scale_out import join
from tests.support import servers

pytestmark = pytest.mark.live

SEED = Path(__file__).resolve().parents[1] / "rooms" / "seed_scale_out.py"
TOKEN = "metrics-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[servers.LiveServer, dict]]:
    # Loopback is not allowed here, so only the token opens /metrics.
    env = {"METRICS_TOKEN": TOKEN, "METRICS_ALLOWED_NETWORKS": "10.0.0.0/8", "OFFLINE_MODEL_WORDS_PER_SECOND": "50"}
    server = servers.start_server(tmp_path_factory.mktemp("metrics"), extra_env=env)
    seeded = json.loads(server.manage("shell", "-c", SEED.read_text()).strip().splitlines()[-1])
    yield server, seeded
    server.stop()


def scrape(server: servers.LiveServer) -> dict[tuple[str, tuple], float]:
    response = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert response.status_code == 200, response.text
    values = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def total(values: dict, name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in values.items() if n == name and all((k, labels[k]) in ls for k in labels))


def test_metrics_are_refused_without_the_token_or_an_allowed_network(site) -> None:
    server, _ = site
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        response = httpx.get(server.url + "/metrics", headers=headers, timeout=10)
        assert response.status_code == 403
        assert "chat_" not in response.text
        # /readyz still says whether the site is ready and what failed, but not the checks' details.
        ready = httpx.get(server.url + "/readyz", headers=headers, timeout=10)
        assert ready.json() == {"status": "ready", "failed": []}
    detailed = httpx.get(server.url + "/readyz", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).json()
    assert detailed["checks"]["database"] == {**detailed["checks"]["database"], "ok": True}


async def test_one_scrape_reports_rooms_turns_jobs_and_ingestion_of_every_process(site) -> None:
    server, seeded = site
    before = scrape(server)
    # The seed's upload was ingested by the worker process: its job and bytes show in Daphne's scrape.
    assert total(before, "chat_job_duration_seconds_count", kind="ingest", outcome="SUCCESSFUL") >= 1
    assert total(before, "chat_ingested_bytes_total") > 1000
    assert total(before, "chat_jobs_queue_depth", kind="ingest", state="READY") == 0
    assert total(before, "chat_job_workers_alive") == 1
    for index in ("words", "vectors"):  # SQLite indexes every write at once
        assert (("chat_index_pending_rows", (("index", index),)) in before) and total(
            before, "chat_index_pending_rows", index=index
        ) == 0

    alice = await join(server, seeded["cookies"]["alice"])
    bob = await join(server, seeded["cookies"]["bob"])
    during = scrape(server)
    assert total(during, "chat_open_sockets") == total(before, "chat_open_sockets") + 2
    assert total(during, "chat_open_rooms") == 1
    daphne_pid = str(server.process.pid)
    assert total(during, "chat_open_sockets", pid=daphne_pid) == 2  # per process

    await alice.ask(seeded["conversation"], "What tools do sea otters use?")
    done = await alice.until("assistant.done")
    await bob.until("assistant.done")
    await asyncio.sleep(0.2)
    after = scrape(server)
    assert total(after, "chat_turns_started_total") == total(before, "chat_turns_started_total") + 1
    assert total(after, "chat_turns_finished_total", status="complete") == 1
    assert total(after, "chat_turn_first_token_seconds_count") == 1
    assert total(after, "chat_turn_duration_seconds_count", status="complete") == 1
    deltas = sum(1 for event in alice.events if event["type"] == "assistant.delta")
    assert deltas >= 1 and done["message"]["status"] == "complete"
    # Every delta, the start and the end went to both sockets (and the question, presence frames...).
    assert total(after, "chat_frames_sent_total") - total(before, "chat_frames_sent_total") >= 2 * (deltas + 2)
    assert total(after, "chat_channel_layer_errors_total") == 0

    await alice.socket.close()
    await bob.socket.close()
    await asyncio.sleep(0.5)
    closed = scrape(server)
    assert total(closed, "chat_open_sockets") == 0 and total(closed, "chat_open_rooms") == 0
