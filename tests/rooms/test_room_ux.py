"""Issue 16 on the socket: regenerate and edit make versions every member sees, feedback counts go live, typing is
passed on (rate-limited), conversations get titles and are archived by their creator only, stops are recorded."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from assistant_chat import services
from assistant_chat.models import Conversation, Message, MessageFeedback
from assistant_chat.rooms import turn_runner
from tests.providers.replay_server import ReplayServer
from tests.rooms.helpers import Socket, adb, make_world, openai_stream, register_upstream

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def world():
    return make_world()


async def members(world, *names: str) -> list[Socket]:
    sockets = [Socket(world[name], "lab") for name in names]
    for socket in sockets:
        assert await socket.connect()
        await socket.until("room.joined")
    return sockets


async def answered(socket: Socket, conversation: Conversation, content: str) -> dict:
    await socket.send({"type": "message.send", "conversation_id": conversation.pk, "content": content})
    return (await socket.until("assistant.done"))["message"]


async def test_regenerate_makes_a_new_version_both_members_see(world):
    alice, bob = await members(world, "alice", "bob")
    first = await answered(alice, world["conversation"], "How do otters open shellfish?")
    await bob.until("assistant.done")
    assert first["version"] == 1 and first["version_of"] is None and first["versions"] == [first["id"]]
    await bob.send({"type": "message.regenerate", "message_id": first["id"]})  # any member may regenerate
    for socket in (alice, bob):
        requeued = await socket.until("message.updated")
        assert requeued["message"]["id"] == first["reply_to"] and requeued["message"]["status"] == "queued"
        start = await socket.until("assistant.start")
        assert start["message"]["version_of"] == first["id"] and start["message"]["version"] == 2
        assert start["message"]["slot"] == first["id"] and start["message"]["reply_to"] == first["reply_to"]
        assert start["message"]["requested_by_id"] == world["bob"].pk
        done = (await socket.until("assistant.done"))["message"]
        assert done["versions"] == [first["id"], done["id"]] and done["status"] == "complete"
    old = await adb(Message.objects.get)(pk=first["id"])
    assert old.content == first["content"]  # the earlier version is kept
    # The question is answered, not left waiting; a regenerate of a streaming or queued one is refused.
    question = await adb(Message.objects.get)(pk=first["reply_to"])
    assert question.status == "complete"
    await alice.close()
    await bob.close()


async def test_regenerate_refuses_a_question_and_a_stranger(world):
    (alice,) = await members(world, "alice")
    first = await answered(alice, world["conversation"], "How do bees find flowers?")
    await alice.send({"type": "message.regenerate", "message_id": first["reply_to"]})
    refused = await alice.until("error")
    assert refused["code"] == "invalid_argument" and "Only an answer" in refused["message"]
    carol = Socket(world["carol"], "other")
    assert await carol.connect()
    await carol.send({"type": "message.regenerate", "message_id": first["id"]})
    assert (await carol.until("error"))["code"] == "not_found"  # another room's answer does not exist for her
    assert await adb(Message.objects.filter(role="assistant").count)() == 1
    await alice.close()
    await carol.close()


async def test_edit_and_resend_is_a_new_version_of_the_question_and_its_answer(world):
    alice, bob = await members(world, "alice", "bob")
    first = await answered(alice, world["conversation"], "How do otters open clams?")
    await bob.until("assistant.done")
    await alice.send(
        {"type": "message.edit", "message_id": first["reply_to"], "content": "How do bees dance?", "client_id": "e1"}
    )
    for socket in (alice, bob):
        edited = (await socket.until("chat.message"))["message"]
        assert edited["version_of"] == first["reply_to"] and edited["version"] == 2 and edited["edited"]
        assert edited["content"] == "How do bees dance?"
        answer = (await socket.until("assistant.done"))["message"]
        assert answer["reply_to"] == edited["id"] and answer["version_of"] == first["id"] and answer["version"] == 2
    # Sending the same edit again (a retry with its client_id) saves it once.
    await alice.send(
        {"type": "message.edit", "message_id": first["reply_to"], "content": "How do bees dance?", "client_id": "e1"}
    )
    await alice.until("chat.message")
    assert await adb(Message.objects.filter(version_of_id=first["reply_to"]).count)() == 1
    # Only the author may edit: bob is refused and nothing is saved.
    await bob.send({"type": "message.edit", "message_id": first["reply_to"], "content": "Mine now"})
    refused = await bob.until("error")
    assert refused["code"] == "forbidden" and refused["ref"] == "message.edit"
    assert not await adb(Message.objects.filter(content="Mine now").exists)()
    await alice.close()
    await bob.close()


async def test_feedback_is_one_changeable_vote_per_member_with_live_counts(world):
    alice, bob = await members(world, "alice", "bob")
    answer = await answered(alice, world["conversation"], "How do otters open shellfish?")
    await bob.until("assistant.done")
    await alice.send({"type": "feedback.set", "message_id": answer["id"], "value": "up"})
    assert (await alice.until("feedback.mine"))["value"] == "up"
    counts = await bob.until("feedback.updated")
    assert (counts["message_id"], counts["up"], counts["down"]) == (answer["id"], 1, 0)
    await bob.send({"type": "feedback.set", "message_id": answer["id"], "value": "down", "comment": "Too short"})
    counts = await alice.until("feedback.updated", down=1)
    assert (counts["up"], counts["down"]) == (1, 1)
    await alice.send({"type": "feedback.set", "message_id": answer["id"], "value": "down"})  # changed, not added
    counts = await bob.until("feedback.updated", up=0)
    assert counts["down"] == 2
    await alice.send({"type": "feedback.set", "message_id": answer["id"], "value": "none"})  # taken back
    assert (await alice.until("feedback.mine", value=None))["comment"] == ""
    votes = await adb(lambda: list(MessageFeedback.objects.values_list("user__username", "value", "comment")))()
    assert votes == [("bob", "down", "Too short")]
    # Bad input and questions are refused with a reason; the socket stays open.
    await alice.send({"type": "feedback.set", "message_id": answer["id"], "value": "meh"})
    assert "'value' must be" in (await alice.until("error"))["message"]
    await alice.send({"type": "feedback.set", "message_id": answer["reply_to"], "value": "up"})
    assert "answers only" in (await alice.until("error"))["message"]
    await alice.close()
    await bob.close()


def test_the_database_keeps_one_vote_per_member_and_version(world):
    alice = world["alice"]
    question = services.message_create(conversation=world["conversation"], author=alice, content="Q")
    answer = Message.objects.create(conversation=world["conversation"], role="assistant", reply_to=question)
    MessageFeedback.objects.create(message=answer, user=alice, value="up")
    with pytest.raises(IntegrityError), transaction.atomic():
        MessageFeedback.objects.create(message=answer, user=alice, value="down")
    with pytest.raises(IntegrityError), transaction.atomic():
        MessageFeedback.objects.create(message=answer, user=world["bob"], value="sideways")
    with pytest.raises(IntegrityError), transaction.atomic():
        Message.objects.create(conversation=world["conversation"], role="assistant", version_of=answer, version=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        Message.objects.create(conversation=world["conversation"], role="assistant", status="complete",
                               stopped_by=alice)  # fmt: skip


async def more_typing(socket: Socket, wait: float = 0.6) -> int:
    count = 0
    while not await socket.nothing(wait):
        if (await socket.next())["type"] == "member.typing":
            count += 1
    return count


async def test_typing_is_passed_on_at_most_once_per_interval_and_never_stored(world):
    alice, bob = await members(world, "alice", "bob")
    before = await adb(Message.objects.count)()
    for _ in range(5):
        await alice.send({"type": "typing.notify", "conversation_id": world["conversation"].pk})
    typing = await bob.until("member.typing")
    assert typing["user"] == "alice" and typing["user_id"] == world["alice"].pk
    assert await more_typing(bob) == 0  # the other four were dropped quietly
    assert await adb(Message.objects.count)() == before
    carol = Socket(world["carol"], "other")
    assert await carol.connect()
    await carol.send({"type": "typing.notify", "conversation_id": world["conversation"].pk})
    assert (await carol.until("error"))["code"] == "not_found"
    await alice.close()
    await bob.close()
    await carol.close()


async def test_only_the_creator_archives_a_conversation(world):
    alice, bob = await members(world, "alice", "bob")
    conversation = world["conversation"]
    await bob.send({"type": "conversation.archive", "conversation_id": conversation.pk, "archived": True})
    assert (await bob.until("error"))["code"] == "forbidden"
    assert not (await adb(Conversation.objects.get)(pk=conversation.pk)).archived
    await alice.send({"type": "conversation.archive", "conversation_id": conversation.pk, "archived": True})
    for socket in (alice, bob):
        event = await socket.until("conversation.archived")
        assert event["conversation"]["archived"] is True and event["conversation"]["id"] == conversation.pk
    await alice.send({"type": "conversation.archive", "conversation_id": conversation.pk, "archived": False})
    assert (await bob.until("conversation.archived"))["conversation"]["archived"] is False
    await alice.send({"type": "conversation.archive", "conversation_id": conversation.pk, "archived": "yes"})
    assert "true or false" in (await alice.until("error"))["message"]
    await alice.close()
    await bob.close()


async def test_an_unnamed_conversation_is_titled_after_its_first_answer_but_a_rename_wins(world):
    alice, bob = await members(world, "alice", "bob")
    await alice.send({"type": "conversation.create", "client_id": "c1"})
    created = (await alice.until("conversation.created"))["conversation"]
    assert created["title"] == "New conversation" and created["title_source"] == "default"
    conversation = await adb(Conversation.objects.get)(pk=created["id"])
    await answered(alice, conversation, "how do sea otters open shellfish with rocks?")
    renamed = (await bob.until("conversation.renamed"))["conversation"]
    # The offline model writes no titles: the title is derived from the question.
    assert renamed["title"] == "How do sea otters open shellfish with rocks" and renamed["title_source"] == "auto"
    await alice.send({"type": "conversation.rename", "conversation_id": conversation.pk, "title": "Otters"})
    assert (await bob.until("conversation.renamed"))["conversation"]["title_source"] == "manual"
    await turn_runner.drain()
    # A later answer never overwrites a member's name, and the automatic one only applies while unnamed.
    assert await adb(services.conversation_title_auto)(conversation_id=conversation.pk, title="Other") is None
    assert (await adb(Conversation.objects.get)(pk=conversation.pk)).title == "Otters"
    await alice.close()
    await bob.close()


def test_derived_titles_are_short_and_clean():
    assert services.title_from_question("  @assistant what   is a seal?  ") == "What is a seal"
    long = services.title_from_question("word " * 40)
    assert len(long) <= services.AUTO_TITLE_MAX + 1 and long.endswith("…")


async def test_staff_settings_change_reaches_everyone_in_the_room(world):
    alice, bob = await members(world, "alice", "bob")
    room = world["room"]
    room.name = "Lab (renamed)"
    room.temperature = 0.5
    await adb(room.save)()
    for socket in (alice, bob):
        event = await socket.until("room.updated")
        assert event["room"]["name"] == "Lab (renamed)" and event["room"]["temperature"] == 0.5
        assert event["room"]["model"].startswith("offline")
    await alice.close()
    await bob.close()


async def test_a_provider_model_writes_the_title_of_an_unnamed_conversation(world):
    answer, title = openai_stream(["Otters use ", "rocks."]), openai_stream(["Otters and ", "their rocks"])
    async with ReplayServer(answer, title) as upstream:
        world["room"].model = await adb(register_upstream)(upstream.url)
        await adb(world["room"].save)()
        (alice,) = await members(world, "alice")
        conversation = await adb(services.conversation_create)(room=world["room"], user=world["alice"])
        await answered(alice, conversation, "how do otters open shellfish?")
        renamed = (await alice.until("conversation.renamed"))["conversation"]
        assert renamed["title"] == "Otters and their rocks" and renamed["title_source"] == "auto"
        asked = upstream.requests[-1].body
        assert asked["messages"][-1]["content"] == "how do otters open shellfish?" and asked["max_tokens"] == 24
        await alice.close()
