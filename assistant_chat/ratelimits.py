"""Counters for the writes a member can repeat (new conversations, renames), kept in Django's cache.

Called by `services` before such a write. With REDIS_URL the cache is Redis, so a limit holds across every server
process; without it, per process (the embedded default runs one). A fixed window per member and action: simple,
and at most twice the limit in a burst across a window's edge. Imports nothing from the project.
"""

from __future__ import annotations

import time

from django.core.cache import cache


def hit(*, action: str, user_id: int, limit: int, window_seconds: int) -> bool:
    """Count one `action` by `user_id`; False once the count in the current window passes `limit`."""
    if limit <= 0:
        return True
    window = int(time.time() // window_seconds)
    key = f"ratelimit:{action}:{user_id}:{window}"
    cache.add(key, 0, timeout=window_seconds + 1)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=window_seconds + 1)
        count = 1
    return count <= limit
