"""Issue 16 on the pages: a long conversation opens with its newest places only, older ones load by scrolling up
(permission-checked), each place shows its latest version, archived conversations leave the list, and the model
reads the latest version of each earlier place."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from assistant_chat import selectors, services
from assistant_chat.models import Message
from tests.rooms.helpers import make_user, make_world

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def world():
    return make_world("Long talk")


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def fill(conversation, author, count: int) -> list[int]:
    Message.objects.bulk_create(
        Message(conversation=conversation, role="user", author=author, content=f"message {i}") for i in range(count)
    )
    return list(Message.objects.filter(conversation=conversation).order_by("id").values_list("pk", flat=True))


def page_queries(client: Client, url: str) -> tuple[int, object]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries), response


def test_a_long_conversation_opens_with_its_newest_places_in_as_many_queries_as_a_short_one(world):
    client = client_for(world["alice"])
    url = f"/rooms/lab/?c={world['conversation'].pk}"
    fill(world["conversation"], world["alice"], 60)
    short_queries, _ = page_queries(client, url)
    ids = fill(world["conversation"], world["alice"], 5000 - 60)
    long_queries, response = page_queries(client, url)
    assert long_queries <= short_queries
    shown = [m["id"] for m in response.context["messages"]]
    assert shown == ids[-selectors.MESSAGE_PAGE :]
    state = response.context["state"]
    assert state["has_more"] and state["first_message_id"] == shown[0] and response.context["earlier"] == 5000 - 50
    assert state["older_url"] == f"/rooms/lab/conversations/{world['conversation'].pk}/messages/"


def test_older_messages_load_page_by_page_in_order(world):
    ids = fill(world["conversation"], world["alice"], 120)
    client = client_for(world["bob"])
    url = f"/rooms/lab/conversations/{world['conversation'].pk}/messages/"
    first = client.get(url, {"before": ids[70], "limit": 50}).json()
    assert [m["id"] for m in first["messages"]] == ids[20:70] and first["has_more"]
    rest = client.get(url, {"before": ids[20], "limit": 50}).json()
    assert [m["id"] for m in rest["messages"]] == ids[:20] and not rest["has_more"]
    assert rest["messages"][0]["my_feedback"] == {"value": "", "comment": ""}
    for bad in ({"before": "x"}, {"limit": "0"}, {"limit": "500"}, {"before": "-1"}):
        response = client.get(url, bad)
        assert response.status_code == 400 and "must be" in response.json()["error"]


def test_strangers_get_no_older_messages_nor_single_messages(world):
    ids = fill(world["conversation"], world["alice"], 3)
    url = f"/rooms/lab/conversations/{world['conversation'].pk}/messages/"
    carol = client_for(world["carol"])
    assert carol.get(url).status_code == 404
    assert carol.get(f"/rooms/other/conversations/{world['conversation'].pk}/messages/").status_code == 404
    assert carol.get(f"/rooms/other/messages/{ids[0]}.json").status_code == 404
    assert carol.get(f"/rooms/lab/messages/{ids[0]}.json").status_code == 404
    assert Client().get(url).status_code == 302  # signed out: to the login page
    assert client_for(world["bob"]).get(f"/rooms/lab/messages/{ids[0]}.json").json()["message"]["id"] == ids[0]


def test_a_place_shows_its_latest_version_with_every_version_listed(world):
    alice = world["alice"]
    question = services.message_create(conversation=world["conversation"], author=alice, content="Old question")
    edited = services.message_edit(message=question, author=alice, content="New question")
    later = services.message_create(conversation=world["conversation"], author=alice, content="Later")
    response = client_for(world["bob"]).get(f"/rooms/lab/?c={world['conversation'].pk}")
    shown = response.context["messages"]
    assert [m["id"] for m in shown] == [edited.pk, later.pk]  # the edit stays in the question's place
    assert shown[0]["versions"] == [question.pk, edited.pk] and shown[0]["edited"] and shown[0]["slot"] == question.pk
    older = client_for(world["bob"]).get(f"/rooms/lab/messages/{question.pk}.json").json()["message"]
    assert older["content"] == "Old question" and older["version"] == 1 and older["version_count"] == 2
    with pytest.raises(services.errors.PermissionDenied):
        services.message_edit(message=question, author=world["bob"], content="Not his")


def test_the_model_reads_the_latest_version_of_each_earlier_place(world):
    alice, conversation = world["alice"], world["conversation"]
    q1 = services.message_create(conversation=conversation, author=alice, content="First, old")
    a1 = Message.objects.create(conversation=conversation, role="assistant", reply_to=q1, content="Answer one")
    a1b = Message.objects.create(
        conversation=conversation, role="assistant", reply_to=q1, content="Answer one, again", version_of=a1, version=2
    )
    q2 = services.message_create(conversation=conversation, author=alice, content="Second")
    q1b = services.message_edit(message=q1, author=alice, content="First, edited")
    reply = Message.objects.create(conversation=conversation, role="assistant", reply_to=q2, status="streaming")
    history = selectors.conversation_history(conversation_id=conversation.pk, before_id=reply.pk, limit=20)
    assert [m.content for m in history] == ["First, edited", "Answer one, again", "Second"]
    assert q1b.version_of_id == q1.pk and a1b.version == 2


def test_who_may_stop_an_answer(world):
    alice, bob = world["alice"], world["bob"]
    question = services.message_create(conversation=world["conversation"], author=alice, content="Q", queued=True)
    reply = services.turn_start_next(conversation_id=world["conversation"].pk, runner="test")
    assert reply.requested_by_id == alice.pk
    assert selectors.message_may_stop(user=alice, message=reply)  # the asker
    assert not selectors.message_may_stop(user=bob, message=reply)  # another member
    with pytest.raises(services.errors.PermissionDenied):
        services.turn_stop_request(message=reply, user=bob)
    assert Message.objects.get(pk=reply.pk).stopped_by_id is None
    boss = make_user("boss", is_staff=True, is_superuser=True)
    assert selectors.message_may_stop(user=boss, message=reply)  # a room manager
    services.turn_stop_request(message=reply, user=boss)
    assert Message.objects.get(pk=reply.pk).stopped_by_id == boss.pk
    services.turn_finish(message_id=reply.pk, status="complete", content="done", citations=[], seq=1)
    assert Message.objects.get(pk=reply.pk).stopped_by_id is None  # the stop came too late: nothing recorded
    # Whoever asked for a regenerated version may stop it, though the question is not theirs.
    services.message_regenerate(message=Message.objects.get(pk=reply.pk), user=bob)
    again = services.turn_start_next(conversation_id=world["conversation"].pk, runner="test")
    assert again.version_of_id == reply.pk and again.requested_by_id == bob.pk and question.pk == again.reply_to_id
    assert selectors.message_may_stop(user=bob, message=again)


def test_archived_conversations_leave_the_list_until_asked_for(world):
    archived = services.conversation_create(room=world["room"], user=world["alice"], title="Done with this")
    services.conversation_archive(conversation=archived, user=world["alice"], archived=True)
    with pytest.raises(services.errors.PermissionDenied):
        services.conversation_archive(conversation=archived, user=world["bob"], archived=False)
    bob = client_for(world["bob"])
    listed = bob.get("/rooms/lab/").context
    assert [c.title for c in listed["conversations"]] == ["Long talk"] and listed["archived_count"] == 1
    assert [c.title for c in bob.get("/rooms/lab/", {"archived": "1"}).context["conversations"]] == ["Done with this"]
    assert bob.get("/rooms/lab/", {"c": archived.pk}).context["conversation"] == archived
    mine = client_for(world["alice"]).get("/rooms/lab/", {"c": archived.pk}).context
    assert mine["can_archive"] and not bob.get("/rooms/lab/", {"c": archived.pk}).context["can_archive"]
