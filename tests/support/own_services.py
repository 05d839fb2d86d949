"""Services a fault test owns and may stop: a Redis and a PostgreSQL cluster of its own, on free ports, never the
machine's shared ones (HELPER_RULES). Each skips (or fails in CI) when the binaries are missing."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.servers import free_port, require


class OwnRedis:
    def __init__(self, tmp: Path) -> None:
        binary = shutil.which("redis-server")
        require(None if binary else "redis-server is not installed")
        self.binary = binary or "redis-server"
        self.port = free_port()
        self.dir = tmp
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.dir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        import redis

        while True:
            try:
                redis.Redis.from_url(self.url, socket_connect_timeout=1).ping()
                return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)


class OwnPostgres:
    """A throwaway cluster (initdb as the `postgres` user, since initdb refuses root) on a free port."""

    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        require(None if bins else "PostgreSQL server binaries (initdb) are not installed")
        self.bin = Path(bins[-1]).parent if bins else Path("/nonexistent")
        self.port = free_port()
        self.run_as: list[str] = []
        if os.geteuid() == 0:
            require(None if shutil.which("runuser") else "runuser is missing (initdb refuses to run as root)")
            self.run_as = ["runuser", "-u", "postgres", "--"]
        # Not under pytest's tmp (0700, root's): the postgres user must reach it.
        self.root = Path(tempfile.mkdtemp(prefix="chat-test-pg-"))
        self.root.chmod(0o777)
        self.data = self.root / "data"

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run([*self.run_as, *args], check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.data / "log"), "-w", "start"
        )

    def stop(self) -> None:
        subprocess.run(
            [*self.run_as, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
