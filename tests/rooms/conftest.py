"""Room tests end only when the turns they started have ended, so no turn writes while the test database is reset;
then this test's runner, supervisor and listeners stop (each test has its own event loop and fan-out)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from assistant_chat.rooms import turn_runner


@pytest.fixture(autouse=True)
async def _turns_end_before_teardown(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    yield
    await turn_runner.drain()
    turn_runner.stop_background()
