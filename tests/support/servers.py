"""A real server for end-to-end tests: Daphne and a job worker in subprocesses, on their own database, on a free
local port.

Used by the SDK tests (pinecone 10.x, 8.x, openai) so that they speak HTTP to what users run, not to a test
client. The database is a fresh SQLite file or a fresh PostgreSQL database that is dropped afterwards. Uploads are
processed by the worker, as in production; fault tests kill and restart either process (`kill_worker`,
`start_worker`, `restart_daphne`).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN_DSN = os.environ.get("TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_TEST_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(reason: str | None) -> None:
    """Skip with `reason` on a machine without the service; in CI a missing service is a failure."""
    import pytest

    if reason is None:
        return
    if IN_CI:
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_available() -> str | None:
    """None if PostgreSQL answers, else the reason it does not."""
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=3):
            return None
    except Exception as exc:
        return f"PostgreSQL at {PG_ADMIN_DSN} is not reachable: {exc}"


def create_postgres_database() -> str:
    import psycopg

    name = f"chat_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + name


def drop_postgres_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class LiveServer:
    url: str
    env: dict[str, str]
    process: subprocess.Popen
    log_path: Path
    api_key: str = ""
    extra: dict = field(default_factory=dict)
    worker: subprocess.Popen | None = None
    worker_id: str = ""
    tmp_dir: Path | None = None

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=300
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def new_key(self, *assistants: str) -> str:
        args = ["create_api_key", "--quiet"]
        for name in assistants:
            args += ["--assistant", name]
        return self.manage(*args).strip()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def worker_log(self) -> str:
        path = self.log_path.with_name(f"worker-{self.port}.log")
        return path.read_text(errors="replace")[-5000:] if path.exists() else ""

    def start_worker(self) -> subprocess.Popen:
        """Start (or start again) this server's job worker, with the same worker id."""
        log = self.log_path.with_name(f"worker-{self.port}.log").open("a")
        self.worker = subprocess.Popen(
            [sys.executable, "manage.py", "run_worker", "--worker-id", self.worker_id],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return self.worker

    def kill_worker(self, sig: int = signal.SIGKILL) -> None:
        if self.worker is not None and self.worker.poll() is None:
            self.worker.send_signal(sig)
            self.worker.wait(timeout=30)

    def kill_daphne(self, sig: int = signal.SIGKILL) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)

    def restart_daphne(self) -> None:
        """Start Daphne again on the same port (after `kill_daphne`) and wait until it answers."""
        self.process = _spawn_daphne(self.env, self.port, self.log_path)
        _wait_until_up(self)

    def stop(self) -> None:
        for process in (self.process, self.worker):
            if process is None or process.poll() is not None:
                continue
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _spawn_daphne(env: dict[str, str], port: int, log_path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "chatsite.server", "-b", "127.0.0.1", "-p", str(port), "chatsite.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=log_path.open("a"),
        stderr=subprocess.STDOUT,
    )


def _wait_until_up(server: LiveServer, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"Daphne exited early:\n{server.log()}")
        try:
            httpx.get(server.url + "/healthz", timeout=1)
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"Daphne did not start:\n{server.log()}") from None
            time.sleep(0.1)


def start_server(
    tmp_dir: Path, *, database_url: str = "", extra_env: dict[str, str] | None = None, worker: bool = True
) -> LiveServer:
    port = free_port()
    env = {
        **os.environ,
        "CHAT_VAR_DIR": str(tmp_dir),
        "DATABASE_URL": database_url or f"sqlite:///{tmp_dir / 'db.sqlite3'}",
        "DJANGO_SECRET_KEY": "test-secret-" + uuid.uuid4().hex,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "STATIC_MANIFEST": "false",
        "WHITENOISE_USE_FINDERS": "true",
        "PYTHONUNBUFFERED": "1",
        "JOBS_MODE": "worker",
        "METRICS_DIR": str(tmp_dir / "metrics"),
        **(extra_env or {}),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # each server's processes share their own (METRICS_DIR)
    if "REDIS_URL" not in (extra_env or {}):
        env.pop("REDIS_URL", None)  # the embedded default unless a test asks for Redis
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True
    )
    log_path = tmp_dir / f"daphne-{port}.log"
    server = LiveServer(
        url=f"http://127.0.0.1:{port}",
        env=env,
        process=_spawn_daphne(env, port, log_path),
        log_path=log_path,
        worker_id=f"live-{port}",
        tmp_dir=tmp_dir,
    )
    if worker:
        server.start_worker()
    _wait_until_up(server)
    server.api_key = server.new_key()
    return server
