"""An assistant backed by a remote Pinecone assistant: the remote runs the model, so a chat with it needs no local
key for that model, and names the model as Pinecone does (gpt-4o when none is asked for)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from assistant_chat import errors, turns
from assistant_chat.models import Assistant
from tests.providers.replay_server import ReplayServer
from tests.rooms.helpers import openai_stream

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def remote(settings: Any) -> Assistant:
    settings.OPENAI_API_KEY = ""  # no local key for any hosted model
    settings.ANTHROPIC_API_KEY = ""
    settings.PINECONE_API_KEY = "pc-test"
    return Assistant.objects.create(name="remote-books", remote_name="books")  # as staff set it in the admin


def ask(assistant: Assistant, model: str | None, temperature: float | None = None) -> turns.PreparedTurn:
    message = turns.TurnMessage(role="user", content="How do otters open shellfish?")
    request = turns.TurnRequest(assistant=assistant, messages=[message], model=model, temperature=temperature)
    return turns.prepare_turn(request)


@pytest.mark.parametrize(
    ("model", "sent"), [(None, "gpt-4o"), ("gpt-4o", "gpt-4o"), ("claude-3-5-sonnet", "claude-3-5-sonnet")]
)
def test_the_remote_runs_the_model_asked_for_without_a_local_key(
    remote: Assistant, settings: Any, model: str | None, sent: str
) -> None:
    async def run() -> Any:
        async with ReplayServer(openai_stream(["Otters use rocks. "])) as upstream:
            settings.PINECONE_ASSISTANT_HOST = upstream.url
            result = await turns.collect(await sync_to_async(ask)(remote, model))
            return result, (await upstream.wait_done()).body

    result, body = asyncio.run(run())
    assert "rocks" in result.text
    assert body["model"] == sent and body["stream"] is True


def test_temperature_follows_the_models_own_range(remote: Assistant, settings: Any) -> None:
    settings.PINECONE_ASSISTANT_HOST = "http://127.0.0.1:9"
    assert ask(remote, "claude-3-5-sonnet", 0.9).request.temperature == 0.9
    with pytest.raises(errors.InvalidArgument, match="between 0 and 1"):
        ask(remote, "claude-3-5-sonnet", 1.5)


def test_a_remote_assistant_without_pinecone_configured_says_what_to_set(remote: Assistant, settings: Any) -> None:
    settings.PINECONE_API_KEY = ""
    with pytest.raises(errors.FailedPrecondition, match="PINECONE_API_KEY"):
        ask(remote, None)
