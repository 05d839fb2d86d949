"""In one process, with the in-memory layer: what the supervisor, the access announcements and the consumer's
error handling do. The same faults against real services (Redis and PostgreSQL stopped, processes killed) are in
`tests/faults/`."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import OperationalError
from django.utils import timezone

from assistant_chat import services
from assistant_chat.models import Message
from assistant_chat.rooms import fanout, recovery
from tests.rooms.helpers import Socket, adb, make_assistant, make_room, make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def world():
    alice, bob = make_user("alice"), make_user("bob")
    room = make_room("lab", make_assistant(), [alice, bob])
    conversation = services.conversation_create(room=room, user=alice, title="Questions")
    return {"alice": alice, "bob": bob, "room": room, "conversation": conversation}


@pytest.fixture
def quick(monkeypatch):
    """A supervisor that looks often and waits little for a dead process's answer."""
    monkeypatch.setattr(recovery, "TICK", 0.05)
    monkeypatch.setattr(recovery, "SWEEP", 0.1)
    monkeypatch.setattr(recovery, "QUEUE_MIN_AGE", 0.0)
    monkeypatch.setattr(recovery, "PING_TIMEOUT", 0.2)
    monkeypatch.setattr(fanout, "BACKFILL_TIMEOUT", 0.2)


def dead_turn(conversation, **fields) -> Message:
    """A streaming answer whose process is gone: its runner's channel answers nobody and its lease lapsed."""
    question = Message.objects.create(conversation=conversation, role="user", content="Still there?")
    return Message.objects.create(
        conversation=conversation,
        role="assistant",
        reply_to=question,
        status="streaming",
        content="Half an answer",
        seq=4,
        runner="specific.gone!dead",
        lease_expires_at=timezone.now() - timedelta(seconds=1),
        **fields,
    )


async def test_a_turn_whose_process_died_is_ended_for_its_watchers_and_the_queue_moves_on(world, quick):
    dead = await adb(dead_turn)(world["conversation"])
    waiting = await adb(services.message_send)(
        conversation=world["conversation"], author=world["bob"], content="And then?"
    )
    assert waiting.status == "queued"
    alice = Socket(world["alice"], "lab")
    assert await alice.connect()
    await alice.send({"type": "turn.resume", "message_id": dead.pk, "last_seq": 6, "chars": 20})
    end = await alice.until("assistant.error")
    assert end["message"]["id"] == dead.pk
    assert end["message"]["status"] == "interrupted" and end["message"]["content"] == "Half an answer"
    start = await alice.until("assistant.start")  # the queued question is answered next
    assert start["message"]["reply_to"] == waiting.pk
    assert (await alice.until("assistant.done"))["message"]["status"] == "complete"
    await alice.close()


async def test_a_queued_question_nobody_started_is_answered_by_a_supervisor(world, quick):
    queued = await adb(services.message_send)(conversation=world["conversation"], author=world["bob"], content="Hi?")
    alice = Socket(world["alice"], "lab")
    assert await alice.connect()  # any socket starts this process's runner and its supervisor
    start = await alice.until("assistant.start")
    assert start["message"]["reply_to"] == queued.pk
    await alice.until("assistant.done")
    await alice.close()


async def test_a_member_removed_from_the_room_is_closed_without_sending_a_frame(world):
    bob = Socket(world["bob"], "lab")
    assert await bob.connect()
    await bob.until("room.joined")
    await adb(world["room"].members.remove)(world["bob"])
    error = await bob.until("error", wait=2)
    assert error["code"] == "forbidden"
    closed = await bob.communicator.receive_output(2)
    assert closed == {"type": "websocket.close", "code": 4403}


async def test_a_deactivated_member_is_signed_out_of_every_socket(world):
    sockets = [Socket(world["alice"], "lab") for _ in range(2)]
    for socket in sockets:
        assert await socket.connect()
        await socket.until("room.joined")
    bob = Socket(world["bob"], "lab")
    assert await bob.connect()

    def deactivate() -> None:
        world["alice"].is_active = False
        world["alice"].save()

    await adb(deactivate)()
    for socket in sockets:
        assert (await socket.until("error", wait=2))["code"] == "signed_out"
        assert await socket.communicator.receive_output(2) == {"type": "websocket.close", "code": 4401}
    assert (await bob.until("room.joined"))["user"] == "bob"  # others keep their socket
    await bob.close()


async def test_a_database_error_in_a_handler_is_a_retryable_error_and_the_socket_stays_open(world, monkeypatch):
    real = services.message_send
    calls = []

    def flaky(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise OperationalError("the database went away")
        return real(**kwargs)

    monkeypatch.setattr(services, "message_send", flaky)
    world["room"].reply_mode = "addressed"
    await adb(world["room"].save)()
    alice = Socket(world["alice"], "lab")
    assert await alice.connect()
    frame = {"type": "message.send", "conversation_id": world["conversation"].pk, "content": "hi", "client_id": "x1"}
    await alice.send(frame)
    error = await alice.until("error")
    assert error == {
        "type": "error",
        "code": "unavailable",
        "message": error["message"],
        "ref": "message.send",
        "client_id": "x1",
        "retryable": True,
    }
    await alice.send(frame)  # the client sends it again: saved once
    assert (await alice.until("chat.message"))["client_id"] == "x1"
    assert await adb(Message.objects.filter(client_id="x1").count)() == 1
    await alice.close()
