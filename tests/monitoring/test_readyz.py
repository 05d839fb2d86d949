"""/readyz turns unhealthy within 5 s when Redis, the database or the job worker goes away (naming which), and
healthy again when it returns. Each test owns the service it stops: a Redis or a PostgreSQL of its own."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import servers
from tests.support.own_services import OwnPostgres, OwnRedis

pytestmark = [pytest.mark.faults, pytest.mark.live]

UNHEALTHY_WITHIN = 5.0


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


def test_readyz_follows_the_channel_layer_and_the_worker(redis_site) -> None:
    server, redis = redis_site
    body = wait_status(server, 200, 15)
    assert body["status"] == "ready" and body["checks"]["channel_layer"]["ok"]
    assert "RedisChannelLayer" in body["checks"]["channel_layer"]["detail"]

    redis.kill()
    body = wait_status(server, 503, UNHEALTHY_WITHIN)
    assert body["status"] == "unavailable" and body["failed"] == ["channel_layer"]
    redis.start()  # same port
    wait_status(server, 200, 15)

    server.kill_worker(signal.SIGKILL)
    body = wait_status(server, 503, UNHEALTHY_WITHIN)
    assert body["failed"] == ["worker"]
    assert "no job worker alive" in body["checks"]["worker"]["detail"]
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
            postgres.stop()
            body = wait_status(server, 503, UNHEALTHY_WITHIN)
            assert "database" in body["failed"]
            assert not body["checks"]["database"]["ok"]
            postgres.start()
            wait_status(server, 200, 30)  # the worker reconnects and beats again too
        finally:
            server.stop()
    finally:
        postgres.destroy()
