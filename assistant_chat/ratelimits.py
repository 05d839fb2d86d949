"""Counters for the writes a member can repeat (new conversations, renames, regenerates), kept in Django's cache.

Called by `services` before such a write. With REDIS_URL the cache is Redis, so a limit holds across every server
process; without it, per process (the embedded default runs one). A sliding window per member and action, counted
the usual cheap way: this window's count plus the last window's, weighted by how much of it still lies within
`window_seconds` of now. Unlike a fixed window it does not start afresh at a window's edge (where a fixed window
lets twice the limit through in a burst, and where a member refused a moment ago was suddenly let in). Each counter
is one atomic `incr`, so processes sharing Redis never lose a count. Imports nothing from the project.
"""

from __future__ import annotations

import time

from django.core.cache import cache


def hit(*, action: str, user_id: int, limit: int, window_seconds: int) -> bool:
    """Count one `action` by `user_id`; False once the count within the last `window_seconds` passes `limit`.

    Refused attempts count too: a member who keeps trying stays refused until they pause."""
    if limit <= 0:
        return True
    now = time.time()
    window, into = divmod(now, window_seconds)
    prefix = f"ratelimit:{action}:{user_id}:"
    key = f"{prefix}{int(window)}"
    # Kept through the next window too, where its count still weighs.
    cache.add(key, 0, timeout=2 * window_seconds + 1)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=2 * window_seconds + 1)
        count = 1
    previous = cache.get(f"{prefix}{int(window) - 1}", 0)
    return count + previous * (1 - into / window_seconds) <= limit
