"""A scaled-out deployment that a test may break: a Redis and a PostgreSQL of its own (on free ports, so it can stop,
freeze and restart them without touching the machine's shared ones), the scriptable model upstream
(`tests/faults/upstream.py`) and several Daphne processes on them. Used by the fault suite (`tests/faults/`) and
`bench/faults_bench.py`.

PostgreSQL runs as a cluster created with `initdb` in a temporary directory (as the `postgres` user when this runs
as root, since PostgreSQL refuses to run as root), with durability off: it is thrown away.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.servers import ROOT, free_port

UPSTREAM = ROOT / "tests" / "faults" / "upstream.py"
PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def _pg_tool(name: str) -> str | None:
    for directory in PG_BIN_DIRS:
        if (directory / name).exists():
            return str(directory / name)
    return shutil.which(name)


def missing() -> str | None:
    """Why the cluster cannot run here (None when it can)."""
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (Debian: redis-server)"
    for tool in ("initdb", "pg_ctl"):
        if _pg_tool(tool) is None:
            return f"PostgreSQL's {tool} is not installed (Debian: postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run a PostgreSQL cluster as"
    try:
        import websockets  # noqa: F401
    except ImportError:
        return "the websockets package is not installed"
    return None


def _wait(check: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exception:  # noqa: S110 - not up yet
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come up within {timeout:.0f} s")
        time.sleep(0.05)


class RedisServer:
    """redis-server without persistence: stopped and started again it is empty, as after a real restart."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            + ["--dir", str(self.directory), "--logfile", str(self.directory / "redis.log")],
        )
        import redis

        _wait(lambda: redis.Redis(port=self.port, socket_connect_timeout=0.5).ping(), "redis-server")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()  # no persistence either way: it comes back empty
            self.process.wait(10)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def freeze(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


class PostgresCluster:
    """A PostgreSQL cluster of this test run's own (trust authentication, fsync off), which it may stop."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.port = free_port()
        self.log = directory / "postgres.log"

    def _as_owner(self, *args: str) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *args]
        return list(args)

    def init(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.directory, owner.pw_uid, owner.pw_gid)
        initdb = _pg_tool("initdb")
        assert initdb is not None
        subprocess.run(
            self._as_owner(initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"),
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        pg_ctl = _pg_tool("pg_ctl")
        assert pg_ctl is not None
        subprocess.run(
            self._as_owner(pg_ctl, "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start"),
            check=True,
            capture_output=True,
        )

    def stop(self, mode: str = "fast") -> None:
        pg_ctl = _pg_tool("pg_ctl")
        assert pg_ctl is not None
        subprocess.run(
            self._as_owner(pg_ctl, "-D", str(self.data), "-m", mode, "-w", "stop"), check=False, capture_output=True
        )

    def running(self) -> bool:
        pg_ctl = _pg_tool("pg_ctl")
        assert pg_ctl is not None
        result = subprocess.run(self._as_owner(pg_ctl, "-D", str(self.data), "status"), capture_output=True)
        return result.returncode == 0

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@dataclass
class Daphne:
    name: str
    env: dict[str, str]
    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / f"daphne-{self.name}.log"

    def start(self) -> None:
        self.starts += 1
        with self.log_path.open("a") as log:
            log.write(f"\n===== start {self.starts} =====\n")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "chatsite.server",
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                "chatsite.asgi:application",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self.log_path.open("a"),
            stderr=subprocess.STDOUT,
        )
        process = self.process

        def up() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"Daphne {self.name} exited:\n{self.log()}")
            httpx.get(self.url + "/login/", timeout=1)
            return True

        _wait(up, f"Daphne {self.name}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout: float) -> int | None:
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.terminate()
            if self.wait(20) is None:
                self.process.kill()
                self.process.wait()

    def log(self, tail: int = 6000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:]


SEED = """
import json
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
from assistant_chat import services
from assistant_chat.models import ModelEndpoint, Room

User = get_user_model()
assistant = services.assistant_create(name="handbook")
services.file_upload(assistant=assistant, name="otters.txt", data=b"Sea otters use rocks as tools.")[2].run_here()
ModelEndpoint.objects.create(model_id="faults", base_url=UPSTREAM + "/v1", upstream_model="faults")
names = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory"]
users = [User.objects.create_user(name, password=name + "-pw") for name in names]
room = Room.objects.create(name="Lab", slug="lab", assistant=assistant, model="faults")
room.members.set(users)
cookies = {}
for user in users:
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    cookies[user.username] = f"{settings.SESSION_COOKIE_NAME}={session.session_key}"
print(json.dumps({"room": room.pk, "cookies": cookies}))
"""


class Cluster:
    """Redis, PostgreSQL, the upstream and `processes` Daphne processes ("a", "b", ...) on them."""

    def __init__(self, directory: Path, *, processes: int = 3, env: dict[str, str] | None = None) -> None:
        self.directory = directory
        self.redis = RedisServer(directory)
        # Its own directory straight under the temporary root: the postgres user must be able to reach it.
        self.postgres = PostgresCluster(Path(tempfile.mkdtemp(prefix="chat-faults-pg-")))
        self.upstream_port = free_port()
        self.upstream: subprocess.Popen | None = None
        self.extra_env = env or {}
        self.names = [chr(ord("a") + index) for index in range(processes)]
        self.servers: dict[str, Daphne] = {}
        self.seeded: dict[str, Any] = {}
        self.database_url = ""

    def start(self) -> None:
        self.redis.start()
        self.postgres.init()
        self.postgres.start()
        self.database_url = self.postgres.create_database(f"chat_faults_{uuid.uuid4().hex[:8]}")
        self.upstream = subprocess.Popen(
            [sys.executable, str(UPSTREAM), str(self.upstream_port)], stdout=subprocess.PIPE, text=True
        )
        assert self.upstream.stdout is not None
        if self.upstream.stdout.readline().strip() != "ready":
            raise RuntimeError("the fault upstream did not start")
        env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis.url,
            "DJANGO_SECRET_KEY": "faults-" + uuid.uuid4().hex,  # one site: sessions are valid on every process
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "STATIC_MANIFEST": "false",
            "WHITENOISE_USE_FINDERS": "true",
            "PYTHONUNBUFFERED": "1",
            "CHAT_RATE_LIMIT_MESSAGES": "10000",
            "DATABASE_CONN_MAX_AGE": "60",
            "JOBS_MODE": "worker",  # no worker runs: the seed processes its one file itself
            "METRICS_DIR": str(self.directory / "metrics"),
            **self.extra_env,
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.manage_env = {**env, "CHAT_VAR_DIR": str(self.directory / "manage")}
        self.manage("migrate", "--noinput")
        seed = SEED.replace("UPSTREAM", json.dumps(f"http://127.0.0.1:{self.upstream_port}"))
        self.seeded = json.loads(self.manage("shell", "-c", seed).strip().splitlines()[-1])
        for name in self.names:
            directory = self.directory / f"process-{name}"
            directory.mkdir(exist_ok=True)
            self.servers[name] = Daphne(name, {**env, "CHAT_VAR_DIR": str(directory)}, directory)
        for server in self.servers.values():
            server.start()

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.manage_env, capture_output=True, text=True
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def cookie(self, user: str) -> str:
        return self.seeded["cookies"][user]

    def ensure_healthy(self) -> None:
        """Between tests: whatever the last test stopped is running again."""
        if not self.redis.running():
            self.redis.start()
        if not self.postgres.running():
            self.postgres.start()
        for server in self.servers.values():
            if not server.alive():
                server.start()

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()
        if self.upstream is not None:
            self.upstream.kill()
            self.upstream.wait()
        self.redis.stop()
        self.postgres.stop("immediate")
        shutil.rmtree(self.postgres.directory, ignore_errors=True)

    def sql(self, query: str, *params: Any) -> list[tuple]:
        """Read the deployment's database directly (as an operator would), not through a Daphne process."""
        import psycopg

        with psycopg.connect(self.database_url, autocommit=True) as conn:
            return conn.execute(query, params).fetchall()
