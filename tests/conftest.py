"""Shared fixtures: live Daphne servers (each with its job worker) on SQLite and PostgreSQL, skips that become
failures in CI, and in-process jobs for unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import servers
from tests.support.servers import require


@pytest.fixture(scope="session")
def live_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.LiveServer]:
    server = servers.start_server(tmp_path_factory.mktemp("live-sqlite"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def live_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.LiveServer]:
    require(servers.postgres_available())
    database_url = servers.create_postgres_database()
    server = servers.start_server(tmp_path_factory.mktemp("live-pg"), database_url=database_url)
    yield server
    server.stop()
    servers.drop_postgres_database(database_url)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def live_server_any(request: pytest.FixtureRequest) -> servers.LiveServer:
    """The same test against the embedded default and the scaled-out database."""
    return request.getfixturevalue(f"live_{request.param}")


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    """Rate-limit counters live in the cache, keyed by user id; ids repeat from test to test."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def _plain_static_storage(settings) -> None:
    """Pages render without a collectstatic manifest in tests (the live servers set STATIC_MANIFEST=false)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


IMMEDIATE_TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend", "QUEUES": ["default"]}}


@pytest.fixture(autouse=True)
def _jobs_run_in_the_caller(settings) -> None:
    """Unit tests run background jobs in the test's own process, once the transaction that queued them commits
    (JOBS_MODE=immediate: no worker, nothing durable). The live servers run a real worker process, and
    tests/jobs/ exercise the durable queue, its worker and its recovery against them."""
    settings.JOBS_MODE = "immediate"
    settings.TASKS = IMMEDIATE_TASKS
