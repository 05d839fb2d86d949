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


def test_turn_start_refuses_a_second_turn_but_takes_over_a_lapsed_one(room):
    alice = room.members.get()
    conversation = services.conversation_create(room=room, user=alice)
    question = services.message_create(conversation=conversation, author=alice, content="hi")
    first = services.turn_start(conversation=conversation, reply_to=question, runner="r1")
    with pytest.raises(errors.TurnInProgress):
        services.turn_start(conversation=conversation, reply_to=question, runner="r2")
    Message.objects.filter(pk=first.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    second = services.turn_start(conversation=conversation, reply_to=question, runner="r2")
    first.refresh_from_db()
    assert first.status == "interrupted" and second.status == "streaming"


def test_turn_start_snapshots_the_room_settings(room):
    room.model, room.temperature, room.metadata_filter = "offline", 0.3, {"team": "a"}
    room.save()
    conversation = services.conversation_create(room=room, user=None)
    question = services.message_create(conversation=conversation, author=room.members.get(), content="q")
    reply = services.turn_start(conversation=conversation, reply_to=question, runner="r")
    room.model, room.metadata_filter = "gpt-4o", {}
    room.save()
    reply.refresh_from_db()
    assert (reply.model, reply.temperature, reply.metadata_filter) == ("offline", 0.3, {"team": "a"})


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
