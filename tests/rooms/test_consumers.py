"""The room socket: everyone in the room sees the same stream, nobody elsewhere does, and nothing is lost."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from assistant_chat.models import Conversation, Message
from tests.providers.replay_server import ReplayServer, Reply
from tests.rooms.helpers import Socket, adb, make_world, openai_stream, register_upstream

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def world():
    return make_world()


@contextlib.asynccontextmanager
async def room_upstream(world, reply: Reply) -> AsyncIterator[ReplayServer]:
    """The room answers through a local server replaying `reply` in OpenAI's stream format."""
    async with ReplayServer(reply) as upstream:
        world["room"].model = await adb(register_upstream)(upstream.url)
        await adb(world["room"].save)()
        yield upstream


async def members(world, *names: str) -> list[Socket]:
    sockets = [Socket(world[name], "lab") for name in names]
    for socket in sockets:
        assert await socket.connect()
    return sockets


async def ask(socket: Socket, conversation: Conversation, content: str) -> None:
    await socket.send({"type": "message.send", "conversation_id": conversation.pk, "content": content})


async def test_both_members_see_the_message_every_delta_and_done(world):
    alice, bob = await members(world, "alice", "bob")
    joined = await alice.until("room.joined")
    assert joined["room"]["slug"] == "lab"
    await ask(alice, world["conversation"], "How do otters open shellfish?")
    for socket in (alice, bob):
        message = await socket.until("chat.message")
        assert message["message"]["content"] == "How do otters open shellfish?"
        assert message["message"]["author"] == "alice"
        start = await socket.until("assistant.start")
        done = await socket.until("assistant.done")
        final = done["message"]
        assert final["id"] == start["message"]["id"]
        assert final["status"] == "complete"
        assert socket.text_of(final["id"]) == final["content"]  # the deltas add up to exactly the final text
        seqs = [d["seq"] for d in socket.deltas(final["id"])]
        assert seqs == list(range(1, len(seqs) + 1)) and seqs[-1] == final["seq"]
        assert "rocks" in final["content"] and final["citations"][0]["references"][0]["file_name"] == "otters.txt"
        assert 'class="citation"' in final["html"]
    assert alice.text_of(final["id"]) == bob.text_of(final["id"])
    saved = await adb(Message.objects.get)(pk=final["id"])
    assert saved.content == final["content"] and saved.completion_tokens > 0 and saved.model == "offline"
    await alice.close()
    await bob.close()


async def test_a_member_of_another_room_receives_nothing(world):
    alice, carol = Socket(world["alice"], "lab"), Socket(world["carol"], "other")
    assert await alice.connect() and await carol.connect()
    await alice.until("room.joined")
    await carol.until("room.joined")
    await ask(alice, world["conversation"], "How do bees find flowers?")
    await alice.until("assistant.done")
    heard = []
    while not await carol.nothing(0.5):
        heard.append(await carol.next())
    # Only her own room's presence (batched after her join) may arrive; nothing of room lab.
    assert all(event["type"] == "presence" and event["members"] == ["carol"] for event in heard), heard
    await alice.close()
    await carol.close()


async def test_strangers_and_anonymous_users_are_refused(world):
    from django.contrib.auth.models import AnonymousUser

    assert not await Socket(world["carol"], "lab").connect()
    assert not await Socket(AnonymousUser(), "lab").connect()
    assert not await Socket(world["alice"], "no-such-room").connect()


async def test_a_stranger_cannot_reach_another_rooms_conversation(world):
    carol = Socket(world["carol"], "other")
    assert await carol.connect()
    await carol.until("room.joined")
    await ask(carol, world["conversation"], "let me in")
    error = await carol.until("error")
    assert error["code"] == "not_found" and error["ref"] == "message.send"
    assert not await adb(Message.objects.filter(content="let me in").exists)()
    await carol.close()


@pytest.mark.parametrize(
    "frame, fragment",
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"type": "launch.missiles"}', "Unknown frame type"),
        ('{"type": "message.send", "conversation_id": 1}', "needs 'content'"),
        ('{"type": "message.send", "conversation_id": "1", "content": "x"}', "whole number"),
        ('{"type": "message.send", "conversation_id": 1, "content": "x", "admin": true}', "Unknown field"),
        ('{"type": "turn.cancel", "message_id": true}', "whole number"),
    ],
)
async def test_a_malformed_frame_gets_an_error_and_the_socket_stays_open(world, frame, fragment):
    (alice,) = await members(world, "alice")
    await alice.until("room.joined")
    await alice.send(frame)
    error = await alice.until("error")
    assert fragment in error["message"]
    await ask(alice, world["conversation"], "Still there?")  # the same socket still works
    await alice.until("chat.message")
    await alice.close()


async def test_empty_oversized_and_too_fast_messages_are_refused_with_a_reason(world, settings):
    settings.CHAT_MESSAGE_MAX_CHARS = 50
    settings.CHAT_RATE_LIMIT_MESSAGES = 2
    world["room"].reply_mode = "addressed"
    await adb(world["room"].save)()
    (alice,) = await members(world, "alice")
    await alice.until("room.joined")
    await ask(alice, world["conversation"], "   ")
    assert (await alice.until("error"))["message"] == "Message content cannot be empty"
    await ask(alice, world["conversation"], "x" * 51)
    assert (await alice.until("error"))["code"] == "too_large"
    for text in ("one", "two"):
        await ask(alice, world["conversation"], text)
        await alice.until("chat.message")
    await ask(alice, world["conversation"], "three")
    error = await alice.until("error")
    assert error["code"] == "rate_limited" and "too fast" in error["message"]
    await alice.close()


async def test_reply_mode_addressed_answers_only_when_called(world):
    world["room"].reply_mode = "addressed"
    await adb(world["room"].save)()
    (alice,) = await members(world, "alice")
    await alice.until("room.joined")
    await ask(alice, world["conversation"], "just chatting with bob")
    await alice.until("chat.message")
    assert await alice.nothing(0.5)
    await ask(alice, world["conversation"], "@assistant how do otters eat?")
    await alice.until("assistant.done")
    await alice.close()


async def test_the_model_sees_speakers_by_name(world):
    async with room_upstream(world, openai_stream(["Hi", " there"])) as upstream:
        (alice,) = await members(world, "alice")
        await ask(alice, world["conversation"], "How do otters eat?")
        await alice.until("assistant.done")
        said = [m["content"] for m in upstream.requests[-1].body["messages"] if m["role"] == "user"]
        assert said == ["alice: How do otters eat?"]
        await alice.close()


async def test_cancel_keeps_the_partial_text_and_closes_the_upstream(world):
    tokens = [f"word{i} " for i in range(200)]
    async with room_upstream(world, openai_stream(tokens, delay=0.05)) as upstream:
        alice, bob = await members(world, "alice", "bob")
        await ask(alice, world["conversation"], "Talk for a while")
        start = await alice.until("assistant.start")
        await alice.until("assistant.delta")
        await alice.until("assistant.delta")
        # Only the asker (or a room manager) may stop it: another member is refused and the answer goes on.
        await bob.send({"type": "turn.cancel", "message_id": start["message"]["id"]})
        refused = await bob.until("error")
        assert refused["code"] == "forbidden" and refused["ref"] == "turn.cancel"
        await alice.send({"type": "turn.cancel", "message_id": start["message"]["id"]})
        done = await alice.until("assistant.done")
        final = done["message"]
        assert final["status"] == "cancelled"
        assert final["stopped_by_id"] == world["alice"].pk and final["stopped_by"]
        assert final["content"].startswith("word0 word1") and len(final["content"]) < len("".join(tokens))
        assert alice.text_of(final["id"]) == final["content"]
        record = await upstream.wait_done()
        assert record.disconnected_early and not record.finished
        saved = await adb(Message.objects.get)(pk=final["id"])
        assert saved.status == "cancelled" and saved.content == final["content"]
        # The prompt was read and billed: a stopped answer counts it, with what was streamed.
        assert saved.prompt_tokens > 0 and 0 < saved.completion_tokens < len(tokens)
        await alice.close()
        await bob.close()


async def test_saved_citations_point_at_their_markers_in_the_saved_text(world):
    tokens = ["Otters use rocks ", "as tools [1]. ", "They crack ", "shellfish [1]", ". Bees dance [2]."]
    async with room_upstream(world, openai_stream(tokens)):
        (alice,) = await members(world, "alice")
        await ask(alice, world["conversation"], "How do otters and bees get by?")
        final = (await alice.until("assistant.done"))["message"]
        saved = await adb(Message.objects.get)(pk=final["id"])
        assert len(saved.citations) == 3
        for citation in saved.citations:
            number = citation["references"][0]["number"]
            assert saved.content[citation["position"] :].startswith(f"[{number}")
        await alice.close()


async def test_a_provider_failure_keeps_the_question_and_the_partial_text(world):
    async with room_upstream(world, openai_stream(["Half ", "an ", "answer"], error_after=2)):
        (alice,) = await members(world, "alice")
        await ask(alice, world["conversation"], "Will this work?")
        error = await alice.until("assistant.error")
        final = error["message"]
        assert final["status"] == "failed" and "upstream exploded" in final["error"]
        assert final["content"] == "Half an "
        question = await adb(Message.objects.get)(conversation=world["conversation"], role="user")
        assert question.content == "Will this work?"
        saved = await adb(Message.objects.get)(pk=final["id"])
        assert saved.status == "failed" and saved.content == "Half an "
        await alice.close()


async def test_an_unavailable_model_fails_the_turn_with_the_variable_to_set(world):
    world["room"].model = "gpt-4o"
    await adb(world["room"].save)()
    (alice,) = await members(world, "alice")
    await ask(alice, world["conversation"], "Hello?")
    error = await alice.until("assistant.error")
    assert "OPENAI_API_KEY" in error["message"]["error"]
    await alice.close()


async def test_a_reconnecting_client_gets_exactly_the_missing_text(world):
    tokens = [f"t{i} " for i in range(60)]
    async with room_upstream(world, openai_stream(tokens, delay=0.02)):
        alice, bob = await members(world, "alice", "bob")
        await ask(alice, world["conversation"], "Count for me")
        start = await bob.until("assistant.start")
        message_id = start["message"]["id"]
        first = await bob.until("assistant.delta")
        second = await bob.until("assistant.delta")
        held = first["text"] + second["text"]
        await bob.close()  # bob's network drops mid-answer
        await asyncio.sleep(0.3)
        bob = Socket(world["bob"], "lab")
        assert await bob.connect()
        await bob.until("room.joined")
        greeting = await bob.until("assistant.start")  # told the turn is in flight, not sent its text
        assert greeting["resume"] is True and greeting["message"]["id"] == message_id
        await bob.send({"type": "turn.resume", "message_id": message_id, "last_seq": second["seq"]})
        catch_up = await bob.until("assistant.delta")
        assert catch_up["from_seq"] == second["seq"] + 1
        done = await bob.until("assistant.done")
        received = held + bob.text_of(message_id)
        assert received == done["message"]["content"] == "".join(tokens)
        live = [d["seq"] for d in bob.deltas(message_id)[1:]]
        assert live == list(range(catch_up["seq"] + 1, catch_up["seq"] + 1 + len(live)))  # no seq twice
        # The same socket asking again after the end gets nothing more: it has the end.
        await bob.send({"type": "turn.resume", "message_id": message_id, "last_seq": done["message"]["seq"]})
        assert await bob.nothing(0.5)
        # Another socket asking after the end is answered from the log with the final message, once.
        carol_like = Socket(world["bob"], "lab")
        assert await carol_like.connect()
        await carol_like.until("room.joined")
        for _ in range(2):
            await carol_like.send({"type": "turn.resume", "message_id": message_id, "last_seq": 3})
        again = await carol_like.until("assistant.done")
        assert again["message"]["content"] == "".join(tokens)
        caught_up = carol_like.text_of(message_id)  # the text after seq 3, in one delta, before the end
        assert caught_up and "".join(tokens).endswith(caught_up) and len(carol_like.deltas(message_id)) == 1
        assert await carol_like.nothing(0.5)  # the second resume: nothing twice
        await alice.close()
        await bob.close()
        await carol_like.close()


async def test_the_turn_survives_its_author_leaving(world):
    tokens = [f"w{i} " for i in range(20)]
    async with room_upstream(world, openai_stream(tokens, delay=0.02)):
        alice, bob = await members(world, "alice", "bob")
        await ask(alice, world["conversation"], "Go on")
        await alice.until("assistant.start")
        await alice.close()
        done = await bob.until("assistant.done")
        assert done["message"]["status"] == "complete" and done["message"]["content"] == "".join(tokens)
        await bob.close()


async def test_a_question_sent_while_an_answer_streams_waits_and_is_answered_next(world):
    tokens = [f"w{i} " for i in range(40)]
    async with room_upstream(world, openai_stream(tokens, delay=0.02)) as upstream:
        alice, bob = await members(world, "alice", "bob")
        await ask(alice, world["conversation"], "First")
        first = (await alice.until("assistant.start"))["message"]
        await bob.send(
            {
                "type": "message.send",
                "conversation_id": world["conversation"].pk,
                "content": "Second",
                "client_id": "b1",
            }
        )
        waiting = await bob.until("chat.message", client_id="b1")
        assert waiting["message"]["status"] == "queued"  # shown as waiting, never refused
        assert (await alice.until("assistant.done"))["message"]["id"] == first["id"]
        second = (await alice.until("assistant.start"))["message"]
        assert second["reply_to"] == waiting["message"]["id"] and second["id"] > first["id"]
        assert (await alice.until("assistant.done"))["message"]["content"] == "".join(tokens)
        question = await adb(Message.objects.get)(pk=waiting["message"]["id"])
        assert question.status == "complete"
        # The second turn saw the first exchange, then its own question; nothing queued after it.
        said = [m["content"] for m in upstream.requests[-1].body["messages"] if m["role"] != "system"]
        assert said[-3:] == ["alice: First", "".join(tokens), "bob: Second"]
        await alice.close()
        await bob.close()


async def test_a_message_sent_twice_with_its_client_id_is_saved_once(world):
    world["room"].reply_mode = "addressed"
    await adb(world["room"].save)()
    (alice,) = await members(world, "alice")
    frame = {"type": "message.send", "conversation_id": world["conversation"].pk, "content": "hi", "client_id": "m1"}
    await alice.send(frame)
    first = await alice.until("chat.message")
    await alice.send(frame)  # a resend after a retryable error or a reconnect
    again = await alice.until("chat.message")
    assert first["message"]["id"] == again["message"]["id"]
    assert await adb(Message.objects.filter(content="hi").count)() == 1
    await alice.close()


async def test_conversation_sync_returns_what_a_client_missed(world):
    (alice,) = await members(world, "alice")
    await ask(alice, world["conversation"], "How do bees find flowers?")
    done = await alice.until("assistant.done")
    await alice.close()
    bob = Socket(world["bob"], "lab")
    assert await bob.connect()
    await bob.send({"type": "conversation.sync", "conversation_id": world["conversation"].pk, "after_id": 0})
    question = await bob.until("chat.message")
    answer = await bob.until("assistant.done")
    assert question["message"]["content"] == "How do bees find flowers?"
    assert answer["message"]["content"] == done["message"]["content"]
    await bob.close()


async def test_conversations_are_created_and_renamed_for_everyone(world):
    alice, bob = await members(world, "alice", "bob")
    await alice.send({"type": "conversation.create", "title": "Budget", "client_id": "c1"})
    created = await bob.until("conversation.created")
    assert created["conversation"]["title"] == "Budget"
    await bob.send({"type": "conversation.rename", "conversation_id": created["conversation"]["id"], "title": "Q3"})
    renamed = await alice.until("conversation.renamed")
    assert renamed["conversation"]["title"] == "Q3"
    await bob.send({"type": "conversation.rename", "conversation_id": created["conversation"]["id"], "title": " "})
    assert (await bob.until("error"))["message"] == "Conversation title cannot be empty"
    await alice.close()
    await bob.close()


async def test_presence_lists_who_is_in_the_room(world):
    (alice,) = await members(world, "alice")
    await alice.until("room.joined")
    bob = Socket(world["bob"], "lab")
    assert await bob.connect()
    presence = await alice.until("presence", members=["alice", "bob"])
    assert presence
    await bob.close()
    assert await alice.until("presence", members=["alice"])
    await alice.close()


async def test_a_member_removed_from_the_room_is_cut_off_at_the_next_frame(world):
    bob = Socket(world["bob"], "lab")
    assert await bob.connect()
    await bob.until("room.joined")
    await adb(world["room"].members.remove)(world["bob"])
    await ask(bob, world["conversation"], "still here?")
    error = await bob.until("error")
    assert error["code"] == "forbidden"
    assert not await adb(Message.objects.filter(content="still here?").exists)()
    await bob.close()


async def test_members_of_a_process_that_stopped_announcing_are_dropped(world, monkeypatch):
    """Another process's hub announced bob, then died without a goodbye: once its heartbeat is overdue, bob is no
    longer listed (a process that dies cannot say who left)."""
    from channels.layers import get_channel_layer

    from assistant_chat.rooms import fanout

    monkeypatch.setattr(fanout, "PRESENCE_HEARTBEAT", 0.05)
    monkeypatch.setattr(fanout, "PRESENCE_EXPIRY", 0.3)
    (alice,) = await members(world, "alice")
    await alice.until("room.joined")
    await get_channel_layer().group_send(
        f"room-{world['room'].pk}",
        {"type": "room.presence", "hub": "specific.gone!hub", "users": [world["bob"].pk], "hello": False},
    )
    assert await alice.until("presence", members=["alice", "bob"])
    assert await alice.until("presence", members=["alice"])
    await alice.close()
