"""A room whose model is an alias is answered by the alias's target, and the saved answer names that model."""

from __future__ import annotations

import pytest

from assistant_chat import services
from assistant_chat.models import Message, ModelAlias
from tests.rooms.helpers import Socket, adb, make_assistant, make_room, make_user

pytestmark = pytest.mark.django_db(transaction=True)


async def room_on_alias(settings, target: str):
    """alice's conversation and connected socket in a room whose model `gpt-4o` is an alias of `target` (no key)."""
    settings.OPENAI_API_KEY = ""
    alice = await adb(make_user)("alice")
    room = await adb(make_room)("lab", await adb(make_assistant)(), [alice], model="gpt-4o")
    await adb(ModelAlias.objects.create)(alias="gpt-4o", target=target)
    conversation = await adb(services.conversation_create)(room=room, user=alice, title="Q")
    socket = Socket(alice, "lab")
    assert await socket.connect()
    return conversation, socket


async def test_a_room_on_an_aliased_model_names_the_model_that_answered(settings):
    conversation, socket = await room_on_alias(settings, "offline")
    await socket.send({"type": "message.send", "conversation_id": conversation.pk, "content": "How do otters eat?"})
    done = await socket.until("assistant.done")
    assert done["message"]["status"] == "complete", done
    assert done["message"]["model"] == "offline"
    saved = await adb(Message.objects.get)(pk=done["message"]["id"])
    assert saved.model == "offline"
    await socket.close()


async def test_a_room_on_a_broken_alias_fails_the_turn_saying_why(settings):
    conversation, socket = await room_on_alias(settings, "llama-removed")
    await socket.send({"type": "message.send", "conversation_id": conversation.pk, "content": "Hello?"})
    error = await socket.until("assistant.error")
    assert 'points to "llama-removed"' in error["message"]["error"]
    await socket.close()
