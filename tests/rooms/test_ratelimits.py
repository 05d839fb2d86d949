"""The members' write limits (assistant_chat/ratelimits.py) slide: they do not start afresh at a window's edge."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from assistant_chat import ratelimits

WINDOW = 60
START = 1_000 * WINDOW  # the start of a window


@pytest.fixture
def clock(monkeypatch):
    now = {"t": 0.0}
    monkeypatch.setattr(ratelimits.time, "time", lambda: now["t"])
    cache.clear()
    yield now
    cache.clear()


def hits(clock, at: float, times: int, user_id: int = 1) -> list[bool]:
    clock["t"] = at
    return [ratelimits.hit(action="t", user_id=user_id, limit=3, window_seconds=WINDOW) for _ in range(times)]


def test_a_burst_across_a_windows_edge_is_refused(clock):
    assert hits(clock, START + 59.5, 3) == [True, True, True]
    # A fixed window would let three more through half a second later, in the next window.
    assert hits(clock, START + WINDOW + 0.5, 3) == [False, False, False]


def test_a_member_refused_a_moment_ago_stays_refused_across_the_edge(clock):
    assert hits(clock, START + 59.0, 4) == [True, True, True, False]
    assert hits(clock, START + WINDOW + 0.1, 1) == [False]


def test_the_limit_frees_up_as_old_hits_slide_out(clock):
    assert hits(clock, START + 1, 3) == [True, True, True]
    # Half a window later the three weigh half, so one more fits.
    assert hits(clock, START + WINDOW + 30, 2) == [True, False]
    # A full quiet window later all of it has slid out.
    assert hits(clock, START + 3 * WINDOW + 1, 3) == [True, True, True]


def test_each_member_and_action_count_apart(clock):
    assert hits(clock, START + 5, 4) == [True, True, True, False]
    assert hits(clock, START + 5, 3, user_id=2) == [True, True, True]
    clock["t"] = START + 5
    assert ratelimits.hit(action="other", user_id=1, limit=3, window_seconds=WINDOW)
    assert ratelimits.hit(action="t", user_id=1, limit=0, window_seconds=WINDOW)  # 0: no limit
