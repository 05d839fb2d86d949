"""Shared by the provider tests, which import no Django and can run with `-p no:django`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.providers.replay_server import ReplayServer


@pytest.fixture(autouse=True)
def _plain_static_storage() -> None:
    """Replaces the Django-only autouse fixture of tests/conftest.py: providers need no settings."""


@pytest.fixture
async def server() -> AsyncIterator[ReplayServer]:
    """A local server replaying whatever each test scripts, in the provider's wire format."""
    async with ReplayServer() as replay:
        yield replay
