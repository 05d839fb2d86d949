"""A second database connection for hybrid search: the question's meaning half (embedding it and the vector
search) runs on a search thread while the words half runs on the caller's connection, so a question waits for the
slower of the two rather than their sum. Both halves spend their time where Python lets go of the GIL: waiting on
PostgreSQL (a backend process per connection, so two cores at once), or inside SQLite's engine and numpy's
matrix product. Whichever half answers first prepares the second stage's sentence and word vectors for its
matches while the other still runs (hybrid.py).

Only outside a transaction (the other connection would not see the caller's uncommitted rows) and not on an
in-memory SQLite database (tests: threads share it through SQLite's shared cache, whose locks do not wait). A
few threads per process keep their connection between searches (the DATABASES lifetime, health checks on) and
treat every call as a request boundary as Django does. When every thread is busy the caller runs the work itself:
a queue would make a busy server slower than running in sequence. Imports nothing from rooms, review or the API.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from django.conf import settings
from django.db import connection, connections

from .. import request_boundary

T = TypeVar("T")

_executor: ThreadPoolExecutor | None = None
_slots: threading.BoundedSemaphore | None = None
_size = 0
_lock = threading.Lock()


def usable() -> bool:
    """Whether this caller's work may run on another connection now."""
    if settings.SEARCH_THREADS <= 0 or connection.in_atomic_block:
        return False
    return not (connection.vendor == "sqlite" and connection.is_in_memory_db())  # type: ignore[attr-defined]


def submit(fn: Callable[..., T], *args: Any) -> Future[T] | None:
    """`fn(*args)` started on a search thread, or None when all are busy (then the caller runs it)."""
    global _executor, _slots, _size
    with _lock:
        if _executor is None or _slots is None:
            _size = settings.SEARCH_THREADS
            _executor = ThreadPoolExecutor(max_workers=_size, thread_name_prefix="search")
            _slots = threading.BoundedSemaphore(_size)
        executor, slots = _executor, _slots
    if not slots.acquire(blocking=False):
        return None
    try:
        future = executor.submit(contextvars.copy_context().run, request_boundary.call, fn, args)
    except RuntimeError:  # shut down meanwhile
        slots.release()
        return None
    future.add_done_callback(lambda _: slots.release())
    return future


def shutdown() -> None:
    """Stop the search threads and close their connections (tests, before a database is dropped)."""
    global _executor, _slots
    with _lock:
        executor, size, _executor, _slots = _executor, _size, None, None
    if executor is None:
        return
    # One task per thread (each waits for the others, so the pool starts every thread and none takes two): a
    # connection can only be closed by its own thread.
    barrier = threading.Barrier(size)

    def close() -> None:
        barrier.wait(timeout=10)
        connections.close_all()

    for _ in range(size):
        executor.submit(close)
    executor.shutdown(wait=True)
