"""Limits on what one member can repeat on a room socket: new conversations and renames, open sockets, and frames
that used to close the socket (deep nesting, lone surrogates). Each refusal is an `error` frame saying why."""

from __future__ import annotations

import pytest

from assistant_chat.models import Conversation
from assistant_chat.rooms import limits
from tests.rooms.helpers import Socket, adb, make_assistant, make_room, make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def room():
    alice, bob = make_user("alice"), make_user("bob")
    room = make_room("lab", make_assistant(), [alice, bob])
    return {"room": room, "alice": alice, "bob": bob}


async def test_creating_and_renaming_conversations_is_rate_limited(room, settings):
    settings.CHAT_RATE_LIMIT_CONVERSATIONS = 3
    alice, bob = Socket(room["alice"], "lab"), Socket(room["bob"], "lab")
    assert await alice.connect() and await bob.connect()
    for n in range(2):
        await alice.send({"type": "conversation.create", "title": f"T{n}"})
        await alice.until("conversation.created")
    created = await adb(lambda: Conversation.objects.filter(created_by=room["alice"]).first())()
    await alice.send({"type": "conversation.rename", "conversation_id": created.pk, "title": "Renamed"})
    await alice.until("conversation.renamed")
    await alice.send({"type": "conversation.create", "title": "one too many", "client_id": "c9"})
    refused = await alice.until("error")
    assert refused["code"] == "rate_limited" and "at most 3 per 60 seconds" in refused["message"]
    assert refused["client_id"] == "c9"
    await alice.send({"type": "conversation.rename", "conversation_id": created.pk, "title": "Again"})
    assert (await alice.until("error"))["code"] == "rate_limited"
    assert await adb(Conversation.objects.filter(created_by=room["alice"]).count)() == 2
    # Another member has a limit of their own, and the refused member's socket stays open.
    await bob.send({"type": "conversation.create", "title": "Bob's"})
    await bob.until("conversation.created")
    seen = await alice.until("conversation.created")
    assert seen["conversation"]["title"] == "Bob's"
    await alice.close()
    await bob.close()


async def test_a_member_may_hold_only_so_many_sockets(room, settings):
    settings.CHAT_MAX_SOCKETS_PER_USER = 2
    first, second, third = (Socket(room["alice"], "lab") for _ in range(3))
    assert await first.connect() and await second.connect()
    assert await third.connect()  # accepted only to be told why...
    refusal = await third.until("error")
    assert refusal["code"] == "too_many_sockets" and "2 connections" in refusal["message"]
    closed = await third.communicator.receive_output(2)
    assert closed == {"type": "websocket.close", "code": limits.TOO_MANY_SOCKETS, "reason": "Too many open connections"}
    bob = Socket(room["bob"], "lab")  # ...while others are not affected
    assert await bob.connect()
    await first.close()  # closing one frees a slot
    fourth = Socket(room["alice"], "lab")
    assert await fourth.connect()
    await fourth.until("room.joined")
    assert limits.slots.count(room["alice"].pk) == 2
    for socket in (second, fourth, bob):
        await socket.close()
    assert limits.slots.count(room["alice"].pk) == 0


async def test_deeply_nested_or_invalid_unicode_frames_get_an_error_and_the_socket_stays(room):
    alice = Socket(room["alice"], "lab")
    assert await alice.connect()
    await alice.send('{"type": "message.send", "content": ' + "[" * 20000 + "]" * 20000 + "}")
    assert (await alice.until("error"))["message"] == "Frame is nested too deeply."
    conversation = await adb(Conversation.objects.create)(room=room["room"], title="T")
    frame = '{"type": "message.send", "conversation_id": ' + str(conversation.pk) + ', "content": "hi \\ud800"}'
    await alice.send(frame)
    refused = await alice.until("error")
    assert "not valid Unicode" in refused["message"]
    await alice.send({"type": "conversation.create", "title": "still here"})
    await alice.until("conversation.created")
    await alice.close()
