"""Room writes and reads against the real ORM: the database enforces one streaming answer per conversation, and
the one door keeps strangers out."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.utils import timezone

from assistant_chat import errors, selectors, services
from assistant_chat.models import Message, Room
from tests.rooms.helpers import make_assistant, make_room, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def room():
    return make_room("lab", services.assistant_create(name="a"), [make_user("alice")])


def test_one_streaming_message_per_conversation_is_a_database_rule(room):
    conversation = services.conversation_create(room=room, user=None, title="t")
    Message.objects.create(conversation=conversation, role="assistant", status="streaming")
    with pytest.raises(IntegrityError), transaction.atomic():
        Message.objects.create(conversation=conversation, role="assistant", status="streaming")


def test_questions_wait_in_order_and_one_turn_streams_per_conversation(room):
    alice = room.members.get()
    conversation = services.conversation_create(room=room, user=alice)
    first_q = services.message_send(conversation=conversation, author=alice, content="one", client_id="c1")
    second_q = services.message_send(conversation=conversation, author=alice, content="two", client_id="c2")
    assert first_q.status == second_q.status == "queued"
    first = services.turn_start_next(conversation_id=conversation.pk, runner="r1")
    assert first is not None and first.reply_to_id == first_q.pk and first.status == "streaming"
    assert services.turn_start_next(conversation_id=conversation.pk, runner="r2") is None  # one streams already
    first_q.refresh_from_db()
    assert first_q.status == "complete"
    services.turn_finish(message_id=first.pk, status="complete", content="1", citations=[], seq=1)
    second = services.turn_start_next(conversation_id=conversation.pk, runner="r2")
    assert second is not None and second.reply_to_id == second_q.pk
    assert services.turn_start_next(conversation_id=conversation.pk, runner="r3") is None


def test_a_lapsed_turn_is_ended_once_and_a_live_one_never(room):
    alice = room.members.get()
    conversation = services.conversation_create(room=room, user=alice)
    services.message_send(conversation=conversation, author=alice, content="hi")
    turn = services.turn_start_next(conversation_id=conversation.pk, runner="r1")
    assert turn is not None
    assert services.turn_interrupt_if_lapsed(message_id=turn.pk) is None  # its lease is live
    assert services.turns_renew(checkpoints={turn.pk: ("Half", 3)}) == {turn.pk}
    Message.objects.filter(pk=turn.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    ended = services.turn_interrupt_if_lapsed(message_id=turn.pk)
    assert ended is not None and ended.status == "interrupted" and ended.content == "Half" and ended.seq == 3
    assert services.turn_interrupt_if_lapsed(message_id=turn.pk) is None  # exactly one process ends it
    assert services.turns_renew(checkpoints={turn.pk: None}) == set()  # its runner learns it was ended


def test_a_resent_message_is_saved_once(room):
    alice = room.members.get()
    conversation = services.conversation_create(room=room, user=alice)
    first = services.message_send(conversation=conversation, author=alice, content="hi", client_id="same")
    again = services.message_send(conversation=conversation, author=alice, content="hi", client_id="same")
    assert first.pk == again.pk and Message.objects.filter(content="hi").count() == 1


def test_the_model_sees_each_answer_after_its_own_question(room):
    """Questions queued while an answer streamed were saved before it; the next turn still reads the exchanges
    in order, and a turn never sees questions queued after its own."""
    alice = room.members.get()
    conversation = services.conversation_create(room=room, user=alice)
    q1 = services.message_send(conversation=conversation, author=alice, content="q1")
    a1 = services.turn_start_next(conversation_id=conversation.pk, runner="r")
    assert a1 is not None
    q2 = services.message_send(conversation=conversation, author=alice, content="q2")
    q3 = services.message_send(conversation=conversation, author=alice, content="q3")
    services.turn_finish(message_id=a1.pk, status="complete", content="a1", citations=[], seq=1)
    a2 = services.turn_start_next(conversation_id=conversation.pk, runner="r")
    assert a2 is not None
    history = selectors.conversation_history(conversation_id=conversation.pk, before_id=a2.pk, limit=40)
    assert [m.content for m in history] == ["q1", "a1", "q2"]
    assert [q1.pk, q2.pk, q3.pk] == sorted([q1.pk, q2.pk, q3.pk])


def test_temperature_range_is_a_database_rule(room):
    with pytest.raises(IntegrityError), transaction.atomic():
        Room.objects.filter(pk=room.pk).update(temperature=2.5)


def test_members_by_user_and_by_group_and_nobody_else(room):
    bob, carol, dave = make_user("bob"), make_user("carol"), make_user("dave")
    group = Group.objects.create(name="team")
    bob.groups.add(group)
    room.member_groups.add(group)
    assert selectors.room_get_for_user(user=bob, slug="lab") == room
    assert selectors.room_get_for_user(user=room.members.get(), slug="lab") == room
    for stranger in (carol, dave):
        with pytest.raises(errors.NotFound):
            selectors.room_get_for_user(user=stranger, slug="lab")
    room.archived = True
    room.save()
    with pytest.raises(errors.NotFound):
        selectors.room_get_for_user(user=bob, slug="lab")


def test_a_member_of_room_a_cannot_reach_a_conversation_of_room_b(room):
    other = make_room("other", room.assistant, [make_user("bob")])
    conversation = services.conversation_create(room=other, user=None)
    alice = room.members.get()
    with pytest.raises(errors.NotFound):
        selectors.conversation_get_for_user(user=alice, conversation_id=conversation.pk)
    with pytest.raises(errors.NotFound):  # nor through her own room's door
        selectors.conversation_get_for_user(user=alice, conversation_id=conversation.pk, room=room)


def test_a_file_outside_the_room_filter_is_not_viewable(transactional_db):
    alice = make_user("alice")
    room = make_room("lab", make_assistant(), [alice], metadata_filter={"team": "wildlife"})
    files = {f.name: f for f in room.assistant.files.all()}
    assert selectors.room_file_get_for_user(user=alice, room=room, file_id=files["otters.txt"].file_id)
    with pytest.raises(errors.NotFound):
        selectors.room_file_get_for_user(user=alice, room=room, file_id=files["bees.txt"].file_id)


def test_message_validation(room, settings):
    settings.CHAT_MESSAGE_MAX_CHARS = 10
    conversation = services.conversation_create(room=room, user=None)
    alice = room.members.get()
    for content, error in (
        ("", errors.InvalidArgument),
        ("x" * 11, errors.PayloadTooLarge),
        (5, errors.InvalidArgument),
    ):
        with pytest.raises(error):
            services.message_create(conversation=conversation, author=alice, content=content)
    assert not Message.objects.exists()


def test_addressing_the_assistant(room):
    for content, addressed in (
        ("@assistant hi", True),
        ("hey @A what now", True),
        ("email me at x@assistant.com", False),
        ("no mention", False),
    ):
        assert services.message_addresses_assistant(room=room, content=content) is addressed, content


def test_room_managers_enter_every_room_other_staff_do_not(room):
    from django.contrib.auth.models import Permission

    manager, staff = make_user("manager", is_staff=True), make_user("staff", is_staff=True)
    manager.user_permissions.add(Permission.objects.get(codename="manage_rooms"))
    manager = type(manager).objects.get(pk=manager.pk)  # fresh permission cache
    assert selectors.room_get_for_user(user=manager, slug="lab") == room
    with pytest.raises(errors.NotFound):
        selectors.room_get_for_user(user=staff, slug="lab")
