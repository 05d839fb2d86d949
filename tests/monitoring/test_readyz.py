"""/readyz turns unhealthy within 5 s when Redis, the database or the job worker goes away (naming which), and
healthy again when it returns. Each test owns the service it stops: a Redis or a PostgreSQL of its own."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.rooms.test_scale_out import join
from tests.support import servers
from tests.support.own_services import OwnPostgres, OwnRedis

pytestmark = [pytest.mark.faults, pytest.mark.live]

UNHEALTHY_WITHIN = 5.0
SEED = Path(__file__).resolve().parents[1] / "rooms" / "seed_scale_out.py"


def wait_for_value(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def readyz(server: servers.LiveServer) -> tuple[int, dict]:
    response = httpx.get(server.url + "/readyz", timeout=10)
    return response.status_code, response.json()


def wait_status(server: servers.LiveServer, status: int, within: float) -> dict:
    """Poll /readyz until it answers `status`; fail if that takes longer than `within` seconds."""
    started = time.monotonic()
    while True:
        code, body = readyz(server)
        if code == status:
            return body
        if time.monotonic() - started > within:
            raise AssertionError(f"/readyz still {code} after {within:.0f} s: {body}")
        time.sleep(0.2)


def test_liveness_touches_nothing(live_sqlite: servers.LiveServer) -> None:
    response = httpx.get(live_sqlite.url + "/healthz", timeout=10)
    assert response.status_code == 200 and response.json() == {"status": "alive"}
    assert httpx.post(live_sqlite.url + "/healthz", timeout=10).status_code == 405


@pytest.fixture
def redis_site(tmp_path: Path) -> Iterator[tuple[servers.LiveServer, OwnRedis]]:
    redis = OwnRedis(tmp_path)
    redis.start()
    server = servers.start_server(tmp_path, extra_env={"REDIS_URL": redis.url})
    yield server, redis
    server.stop()
    redis.kill()


def layer_errors(server: servers.LiveServer) -> float:
    text = httpx.get(server.url + "/metrics", timeout=10).text  # loopback is allowed by default
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("chat_channel_layer_errors_total{")
    )


async def test_readyz_follows_the_channel_layer_and_the_worker(redis_site) -> None:
    server, redis = redis_site
    body = wait_status(server, 200, 15)
    assert body["status"] == "ready" and body["checks"]["channel_layer"]["ok"]
    assert "RedisChannelLayer" in body["checks"]["channel_layer"]["detail"]
    seeded = json.loads(server.manage("shell", "-c", SEED.read_text()).strip().splitlines()[-1])
    member = await join(server, seeded["cookies"]["alice"])  # a room open on this process: its hub reads Redis
    assert layer_errors(server) == 0

    redis.kill()
    body = wait_status(server, 503, UNHEALTHY_WITHIN)
    assert body["status"] == "unavailable" and body["failed"] == ["channel_layer"]
    wait_for_value(lambda: layer_errors(server) > 0, 10, "the room's failed reads to be counted")
    redis.start()  # same port
    wait_status(server, 200, 15)
    await member.socket.close()

    server.kill_worker(signal.SIGKILL)
    body = wait_status(server, 503, UNHEALTHY_WITHIN)
    assert body["failed"] == ["worker"]
    assert "is not running" in body["checks"]["worker"]["detail"]
    server.start_worker()
    body = wait_status(server, 200, 15)
    assert body["checks"]["worker"]["detail"] == "1 worker(s) alive"


@pytest.mark.postgres
def test_readyz_follows_the_database(tmp_path: Path) -> None:
    postgres = OwnPostgres()
    try:
        postgres.init()
        postgres.start()
        server = servers.start_server(tmp_path, database_url=postgres.url)
        try:
            wait_status(server, 200, 15)
            worker = server.worker
            assert worker is not None
            postgres.stop()
            body = wait_status(server, 503, UNHEALTHY_WITHIN)
            assert "database" in body["failed"]
            assert not body["checks"]["database"]["ok"]
            # Down until the worker's job loop has met the outage (it used to exit with the error).
            log = server.log_path.with_name(f"worker-{server.port}.log")
            met = lambda: "the database failed" in log.read_text(errors="replace") or worker.poll() is not None  # noqa: E731
            wait_for_value(met, 20, "the worker to meet the outage")
            assert worker.poll() is None, f"the worker exited ({worker.returncode}): {server.worker_log()[-2000:]}"
            postgres.start()
            body = wait_status(server, 200, 30)  # the worker reconnects and beats again too
            assert worker.poll() is None, f"the worker exited ({worker.returncode}): {server.worker_log()[-2000:]}"
            assert body["checks"]["worker"]["detail"] == "1 worker(s) alive"
        finally:
            server.stop()
    finally:
        postgres.destroy()


def test_a_worker_waiting_on_a_long_sqlite_write_is_not_reported_gone(live_sqlite: servers.LiveServer) -> None:
    """On SQLite a big file's chunk swap holds the write lock for seconds, and the worker's heartbeat waits for it:
    /readyz must not call that worker gone (a dead one releases the lock at once)."""
    import sqlite3

    wait_status(live_sqlite, 200, 15)
    database = live_sqlite.env["DATABASE_URL"].removeprefix("sqlite:///")
    holder = sqlite3.connect(database, timeout=10)
    holder.execute("BEGIN IMMEDIATE")  # as the worker's own chunk swap would
    try:
        details = []
        deadline = time.monotonic() + 7  # longer than JOBS_HEARTBEAT_STALE_SECONDS (4)
        while time.monotonic() < deadline:
            code, body = readyz(live_sqlite)
            assert code == 200, body
            details.append(body["checks"]["worker"]["detail"])
            time.sleep(0.5)
        assert any("busy" in detail for detail in details), details
    finally:
        holder.rollback()
        holder.close()
    # Once the lock is released the worker's waiting heartbeat takes it for a moment (still "busy"), then writes.
    deadline = time.monotonic() + 10
    while True:
        code, body = readyz(live_sqlite)
        if code == 200 and body["checks"]["worker"]["detail"] == "1 worker(s) alive":
            break
        assert time.monotonic() < deadline, body
        time.sleep(0.2)
