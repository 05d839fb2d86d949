"""A call on a long-lived thread of our own, treated as a request boundary exactly as Django treats a request:
`close_old_connections` before and after, so an errored or unusable connection (health checks on) or one past its
lifetime is dropped and the next call opens a fresh one. Used by the chat endpoints' database threads
(api/db_threads.py) and hybrid search's threads (knowledge/overlap.py); imports neither.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.db import close_old_connections

T = TypeVar("T")


def call(fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    """`fn(*args)` between two request boundaries on this thread's connections."""
    close_old_connections()
    try:
        return fn(*args)
    finally:
        close_old_connections()
