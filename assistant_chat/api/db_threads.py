"""A few long-lived threads for the database work of the chat endpoints' lean ASGI path (`asgi_chat`).

Under Django's ASGI handler every request runs its sync code on a thread made for that request, so it opens a new
database connection each time (CONN_MAX_AGE cannot help there, and Django advises against it under ASGI). These
threads keep one connection each between requests instead, and treat every call as a request boundary exactly
as Django does (`close_old_connections` before and after: an errored or unusable connection is dropped, with
health checks on). Imports nothing from the API views.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from django.conf import settings
from django.db import connections

from .. import request_boundary

T = TypeVar("T")

_executor: ThreadPoolExecutor | None = None
_lock = threading.Lock()
_local = threading.local()


def _executor_for_process() -> ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=settings.CHAT_DB_THREADS, thread_name_prefix="chat-db")
        return _executor


def _keep_connections() -> None:
    # A connection wrapper belongs to its thread; a private copy of its settings gives these threads (and only
    # these) a connection lifetime, without changing CONN_MAX_AGE for Django's per-request threads.
    for connection in connections.all():
        connection.settings_dict = {
            **connection.settings_dict,
            "CONN_MAX_AGE": settings.CHAT_DB_CONN_MAX_AGE,
            "CONN_HEALTH_CHECKS": True,
        }
    _local.kept = True


def _call(fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    if not getattr(_local, "kept", False):
        _keep_connections()
    return request_boundary.call(fn, args)


async def run(fn: Callable[..., T], *args: Any) -> T:
    """Run `fn(*args)` on a chat database thread; the caller's context variables go with it."""
    context = contextvars.copy_context()
    call = functools.partial(context.run, _call, fn, args)
    return await asyncio.get_running_loop().run_in_executor(_executor_for_process(), call)
