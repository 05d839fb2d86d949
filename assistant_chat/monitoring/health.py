"""Readiness checks for /readyz: the database, the channel layer and the job workers' heartbeat.

Each check runs with a time limit (CHECK_TIMEOUT) so that a service that hangs reads as down within seconds, and
says what failed in words. Database work runs on one thread of its own (one connection, never the request
threads'). Called by `endpoints`; imports the jobs package's heartbeats, nothing of rooms.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.utils import timezone

CHECK_TIMEOUT = 2.0
_db_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="readyz-db")


@dataclass
class Check:
    ok: bool
    detail: str
    ms: float


async def readiness() -> dict[str, Any]:
    """{"status": "ready"|"unavailable", "failed": [...], "checks": {name: {ok, detail, ms}}}."""
    names = ("database", "channel_layer", "worker")
    results = await asyncio.gather(_timed(_database), _timed(_channel_layer), _timed(_worker))
    checks = dict(zip(names, results, strict=True))
    failed = [name for name, check in checks.items() if not check.ok]
    return {
        "status": "unavailable" if failed else "ready",
        "failed": failed,
        "checks": {name: asdict(check) for name, check in checks.items()},
    }


async def _timed(check: Any) -> Check:
    started = time.perf_counter()
    try:
        detail = await asyncio.wait_for(check(), CHECK_TIMEOUT)
        ok = True
    except TimeoutError:
        ok, detail = False, f"no answer within {CHECK_TIMEOUT:.0f} s"
    except Exception as exc:
        ok, detail = False, f"{type(exc).__name__}: {str(exc).strip()[:300]}"
    return Check(ok=ok, detail=detail, ms=round((time.perf_counter() - started) * 1000, 1))


async def _in_db_thread(function: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(_db_thread, function)


async def _database() -> str:
    return await _in_db_thread(_query_database)


def _query_database() -> str:
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:
        connection.close()  # reconnect on the next check
        raise
    return f"{connection.vendor} answers"


async def _channel_layer() -> str:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")
    # A round trip through the layer on a channel of its own: a send and the receive of what was sent.
    channel = f"readyz.{uuid.uuid4().hex}"
    await layer.send(channel, {"type": "readyz.probe"})
    message = await layer.receive(channel)
    if message.get("type") != "readyz.probe":
        raise RuntimeError(f"the layer returned {message.get('type')!r}")
    return f"{type(layer).__name__} round trip"


async def _worker() -> str:
    if settings.JOBS_MODE == "immediate":
        return "jobs run in the caller (JOBS_MODE=immediate): nothing is durable"
    return await _in_db_thread(_check_worker)


def _check_worker() -> str:
    from ..jobs.heartbeats import HOST, live_workers, newest_beat, pid_alive

    try:
        alive = live_workers()
        newest = newest_beat()
    except Exception:
        connection.close()
        raise
    if alive:
        return f"{len(alive)} worker(s) alive"
    if newest is None:
        raise RuntimeError("no job worker has ever reported (start `manage.py run_worker`)")
    age = (timezone.now() - newest.beat_at).total_seconds()
    if newest.host == HOST and not pid_alive(newest.pid):
        raise RuntimeError(f"no job worker alive: {newest.worker_id} (pid {newest.pid}) is not running")
    if age < settings.JOBS_LEASE_SECONDS and _sqlite_write_locked():
        # On SQLite a worker's heartbeat waits while a long write (a big file's chunks) holds the database lock;
        # its process is alive (a dead process releases the lock at once).
        return f"worker {newest.worker_id} busy: the database is write-locked, last heartbeat {age:.1f} s ago"
    raise RuntimeError(f"no job worker alive: the last heartbeat ({newest.worker_id}) was {age:.1f} s ago")


def _sqlite_write_locked() -> bool:
    if connection.vendor != "sqlite":
        return False
    probe = sqlite3.connect(str(settings.DATABASES["default"]["NAME"]), timeout=0)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.rollback()
        return False
    except sqlite3.OperationalError as exc:
        return "locked" in str(exc) or "busy" in str(exc)
    finally:
        probe.close()
