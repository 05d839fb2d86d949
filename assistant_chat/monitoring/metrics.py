"""Prometheus metrics, with the official client in its multi-process mode (every Daphne process and every worker
writes its own files under PROMETHEUS_MULTIPROC_DIR; a scrape of any process reads them all).

Code elsewhere records through the one-line functions below (`metrics.turn_started()`, ...), never through the
metric objects, so that instrumentation never changes how rooms, turns or jobs behave: none of these raises.
Per-process gauges (open sockets, open rooms) keep a `pid` label and drop a process when it exits (or, after a
crash, at the next scrape that finds its pid gone). Imports nothing of the app but settings.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
from pathlib import Path

from prometheus_client import Counter, Gauge, Histogram, multiprocess

logger = logging.getLogger(__name__)

TURNS_STARTED = Counter("chat_turns_started", "Room turns (assistant replies) started")
TURNS_FINISHED = Counter("chat_turns_finished", "Room turns finished, by final status", ["status"])
FIRST_TOKEN_SECONDS = Histogram(
    "chat_turn_first_token_seconds",
    "Time from a turn's start to its first token",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64),
)
TURN_SECONDS = Histogram(
    "chat_turn_duration_seconds",
    "Time from a turn's start to its end, by final status",
    ["status"],
    buckets=(0.5, 1, 2, 5, 10, 20, 40, 80, 160, 320),
)
OPEN_SOCKETS = Gauge("chat_open_sockets", "Room websockets open in this process", multiprocess_mode="liveall")
OPEN_ROOMS = Gauge("chat_open_rooms", "Rooms with local sockets (a hub) in this process", multiprocess_mode="liveall")
FRAMES_SENT = Counter("chat_frames_sent", "Websocket frames written to room sockets")
LAYER_ERRORS = Counter("chat_channel_layer_errors", "Channel layer calls that failed, by operation", ["operation"])
JOB_SECONDS = Histogram(
    "chat_job_duration_seconds",
    "How long a job ran, by kind and outcome (SUCCESSFUL, FAILED)",
    ["kind", "outcome"],
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600),
)
INGESTED_BYTES = Counter("chat_ingested_bytes", "Bytes of uploaded files indexed")


def turn_started() -> None:
    TURNS_STARTED.inc()


def turn_finished(status: str, first_token_ms: float | None, total_ms: float | None) -> None:
    TURNS_FINISHED.labels(status=status).inc()
    if first_token_ms is not None:
        FIRST_TOKEN_SECONDS.observe(first_token_ms / 1000)
    if total_ms is not None:
        TURN_SECONDS.labels(status=status).observe(total_ms / 1000)


def socket_opened() -> None:
    OPEN_SOCKETS.inc()


def socket_closed() -> None:
    OPEN_SOCKETS.dec()


def room_opened() -> None:
    OPEN_ROOMS.inc()


def room_closed() -> None:
    OPEN_ROOMS.dec()


def frames_sent(count: int = 1) -> None:
    if count:
        FRAMES_SENT.inc(count)


def channel_layer_error(operation: str) -> None:
    LAYER_ERRORS.labels(operation=operation).inc()


def turn_send_failed(kind: str) -> None:
    """A turn's frame could not be published (a checkpoint is a database write, not the layer's)."""
    if kind != "checkpoint":
        LAYER_ERRORS.labels(operation="publish").inc()


def job_finished(kind: str, outcome: str, seconds: float) -> None:
    JOB_SECONDS.labels(kind=kind, outcome=outcome).observe(seconds)


def ingested(size: int) -> None:
    INGESTED_BYTES.inc(size)


# --- multi-process bookkeeping -------------------------------------------------------------------------------


def multiprocess_dir() -> Path | None:
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    return Path(path) if path and Path(path).is_dir() else None


_LIVE_FILE = re.compile(r"^gauge_live\w*?_(\d+)\.db$")


def forget_dead_processes() -> None:
    """Drop the per-process gauges of processes that are gone without saying so (killed): their sockets and
    rooms are not open any more. The directory is per machine, so a pid names a local process."""
    path = multiprocess_dir()
    if path is None:
        return
    for pid in {int(m.group(1)) for f in path.iterdir() if (m := _LIVE_FILE.match(f.name))}:
        if not _alive(pid):
            with contextlib.suppress(OSError):
                multiprocess.mark_process_dead(pid, str(path))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _on_exit() -> None:
    path = multiprocess_dir()
    if path is not None:
        with contextlib.suppress(OSError):
            multiprocess.mark_process_dead(os.getpid(), str(path))


atexit.register(_on_exit)
