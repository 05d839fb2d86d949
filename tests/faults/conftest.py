"""The fault suite's deployment: three Daphne processes on a PostgreSQL and a Redis of the suite's own, which the
tests stop, kill and restart (`tests/support/cluster.py`). Started once per session (about 20 s); before each test
whatever the previous one broke runs again. Outside CI it skips with the reason when something is missing.

Figures the tests measure are collected in `test-artifacts/faults-report.json` and printed at the end of the run;
the Daphne processes' logs are kept in `test-artifacts/faults-logs/`.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import cluster as cluster_support
from tests.support.servers import IN_CI, ROOT, require

LEASE_SECONDS = 4.0  # short, so the dead-runner tests are quick; the contract is "lease + 2 s"
DRAIN_SECONDS = 3.0
ENV = {
    "CHAT_TURN_LEASE_SECONDS": str(LEASE_SECONDS),
    "CHAT_TURN_CHECKPOINT_SECONDS": "1",
    "CHAT_DRAIN_SECONDS": str(DRAIN_SECONDS),
    "CHAT_TURN_SAVE_RETRY_SECONDS": "90",
}
REPORT = ROOT / "test-artifacts" / "faults-report.json"
LOGS = ROOT / "test-artifacts" / "faults-logs"
_figures: dict[str, dict[str, Any]] = {}


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[cluster_support.Cluster]:
    require(cluster_support.missing())
    deployment = cluster_support.Cluster(tmp_path_factory.mktemp("faults"), processes=3, env=ENV)
    try:
        deployment.start()
    except Exception:
        deployment.stop()
        if IN_CI:
            raise
        pytest.skip("could not start the fault suite's deployment (see the error above)")
    try:
        yield deployment
    finally:
        deployment.stop()
        # The processes' logs outlive the temporary directory (pytest keeps only the last few runs'), for CI.
        LOGS.mkdir(parents=True, exist_ok=True)
        for server in deployment.servers.values():
            shutil.copyfile(server.log_path, LOGS / server.log_path.name)


@pytest.fixture
def healthy(cluster: cluster_support.Cluster) -> cluster_support.Cluster:
    """The deployment with everything running again (a previous test may have stopped or killed a part)."""
    cluster.ensure_healthy()
    return cluster


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Figures a test measured, reported at the end of the session (and in its assertion messages)."""
    measured: dict[str, Any] = {}
    _figures[request.node.name] = measured
    return measured


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _figures:
        REPORT.parent.mkdir(exist_ok=True)
        REPORT.write_text(json.dumps(_figures, indent=2, sort_keys=True))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not _figures:
        return
    terminalreporter.section("fault suite figures")
    for test, measured in _figures.items():
        shown = ", ".join(f"{key}={value}" for key, value in measured.items())
        terminalreporter.write_line(f"{test}: {shown}")
    terminalreporter.write_line(f"(also in {Path(REPORT).relative_to(ROOT)})")
