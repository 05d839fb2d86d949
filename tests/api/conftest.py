"""Fixtures shared by the API tests."""

from __future__ import annotations

import pytest

from assistant_chat import services
from assistant_chat.models import Assistant


@pytest.fixture
def key() -> str:
    """A new unrestricted API key's secret."""
    return services.api_key_create(name="test")[1]


@pytest.fixture
def assistant() -> Assistant:
    """Assistant "books" with one file, otters.txt, indexed."""
    assistant = services.assistant_create(name="books")
    services.file_upload(
        assistant=assistant, name="otters.txt", data=b"Sea otters use rocks as tools to crack open shellfish."
    )[2].result(timeout=30)
    return assistant
