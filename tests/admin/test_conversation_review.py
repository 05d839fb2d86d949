"""Conversation review in the admin: filters, full-text search, the read-only transcript, exports and usage."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from assistant_chat import services
from assistant_chat.models import Message, Room
from assistant_chat.review import search as history_search
from assistant_chat.review.usage import usage_report
from tests.admin.conftest import answered, login, room_manager, staff_with, superuser_client

pytestmark = pytest.mark.django_db(transaction=True)
LIST = "/admin/assistant_chat/conversation/"


def titles(client, **params) -> list[str]:
    response = client.get(LIST, params)
    assert response.status_code == 200, response.content.decode()[:2000]
    return [c.title for c in response.context["cl"].result_list]


# --- search -----------------------------------------------------------------------------------------------------


def test_search_finds_a_message_by_a_word_in_its_text(world, history) -> None:
    hits = history_search.search_messages(query="waggle", room_ids=[world["lab"].pk, world["other"].pk])
    assert [h.message_id for h in hits] == [history["secret"].pk]
    assert "<mark>waggle</mark>" in hits[0].snippet
    # Stemmed: "otter" finds "otters", "tool" finds "tools"; every word must match.
    assert {h.message_id for h in history_search.search_messages(query="otter tool", room_ids=[world["lab"].pk])} == {
        history["good"].pk
    }
    assert history_search.search_messages(query="otter waggle", room_ids=[world["lab"].pk, world["other"].pk]) == []


def test_search_is_limited_to_the_rooms_given(world, history) -> None:
    assert history_search.search_messages(query="waggle", room_ids=[world["lab"].pk]) == []


def test_the_index_follows_edits_and_deletes(world, history) -> None:
    answer = history["secret"]
    answer.content = "Dancing happens on the honeycomb in darkness."
    answer.save()
    rooms = [world["other"].pk]
    assert history_search.search_messages(query="waggle", room_ids=rooms) == []
    assert [h.message_id for h in history_search.search_messages(query="darkness", room_ids=rooms)] == [answer.pk]
    Message.objects.filter(pk=answer.pk).update(content="Plain words now.")  # a turn's checkpoint writes this way
    assert history_search.search_messages(query="darkness", room_ids=rooms) == []
    history["other_talk"].delete()
    assert history_search.search_messages(query="plain", room_ids=rooms) == []


@pytest.mark.parametrize("query", ['"', "otters*", "NEAR(otters rocks)", "otters OR", "-rocks", "a AND", "^", "(", "'"])
def test_query_syntax_is_never_interpreted(world, history, query) -> None:
    history_search.search_messages(query=query, room_ids=[world["lab"].pk])  # no error
    _boss, client = superuser_client()
    assert client.get(LIST, {"q": query}).status_code == 200


def test_the_admin_search_lists_matching_conversations_with_the_message(world, history) -> None:
    _boss, client = superuser_client()
    response = client.get(LIST, {"q": "shellfish"})
    assert [c.title for c in response.context["cl"].result_list] == ["Otter questions"]
    page = response.content.decode()
    assert "<mark>shellfish</mark>" in page
    assert f"#message-{history['good'].pk - 1}" in page  # the question is the first message that matches
    assert titles(client, q="Bee questions") == ["Bee questions"]  # titles match too
    assert titles(client, q="nothing-like-this") == []


# --- filters ----------------------------------------------------------------------------------------------------


def test_filters_by_room_member_status_model_and_date(world, history) -> None:
    _boss, client = superuser_client()
    assert titles(client) == ["Bee questions", "Otter questions"]
    assert titles(client, room=world["other"].pk) == ["Bee questions"]
    assert titles(client, member=world["bob"].pk) == ["Otter questions"]
    assert titles(client, member=world["carol"].pk) == ["Bee questions"]
    assert titles(client, answers="failed") == ["Otter questions"]
    assert titles(client, answers="ok") == ["Bee questions"]
    assert titles(client, model="replay") == ["Otter questions"]
    assert titles(client, model="offline") == ["Bee questions", "Otter questions"]
    # The date filter's own links, as a reviewer clicks them (time-zone aware bounds).
    today = client.get(LIST).context["cl"].filter_specs[2].links[1][1]
    assert set(today) == {"created_at__gte", "created_at__lt"}
    assert len(titles(client, **today)) == 2
    tomorrow = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    assert titles(client, created_at__gte=tomorrow.isoformat()) == []


def test_the_list_shows_counts_tokens_and_failures_per_row(world, history) -> None:
    _boss, client = superuser_client()
    page = client.get(LIST).content.decode()
    assert "1 failed" in page and "replay" in page
    rows = {c.title: c for c in client.get(LIST).context["cl"].result_list}
    assert rows["Otter questions"].review_stats["n"] == 4
    assert rows["Otter questions"].review_stats["tokens"] == 240


def test_the_list_page_costs_a_fixed_number_of_queries(world, history, django_assert_max_num_queries, settings) -> None:
    settings.CHAT_RATE_LIMIT_CONVERSATIONS = 0  # seeding 30 conversations as one member: no member limit here
    _boss, client = superuser_client()
    for index in range(30):
        conversation = services.conversation_create(room=world["lab"], user=world["alice"], title=f"T{index}")
        answered(conversation, world["alice"], f"question {index}", f"answer {index}")
    client.get(LIST)  # warm the session
    with django_assert_max_num_queries(20):
        client.get(LIST)
    with django_assert_max_num_queries(20):
        client.get(LIST, {"q": "answer"})


# --- the read-only conversation page ----------------------------------------------------------------------------


def test_the_conversation_page_shows_every_message_with_citations_usage_timings_and_errors(world, history) -> None:
    _boss, client = superuser_client()
    page = client.get(f"{LIST}{history['lab_talk'].pk}/change/").content.decode()
    for text in ("How do otters open shellfish?", "Sea otters use rocks as tools", "And the beavers?"):
        assert text in page
    assert "/rooms/lab/files/f-otters/?page=2#page-2" in page  # the citation opens the room's file viewer
    assert "100 prompt + 20 completion" in page and "13 ms" in page and "4 ms" in page
    assert "The model failed: boom" in page and "failed" in page
    assert "<code>offline</code>" in page and "<code>replay</code>" in page
    assert '{"team": "wildlife"}' in page.replace("&quot;", '"')
    assert "0.3" in page
    assert f"{LIST}{history['lab_talk'].pk}/export.json" in page


# --- exports ----------------------------------------------------------------------------------------------------


def test_admin_export_of_one_conversation_contains_every_message_and_citation(world, history) -> None:
    _boss, client = superuser_client()
    response = client.get(f"{LIST}{history['lab_talk'].pk}/export.json")
    assert response["Content-Disposition"] == f'attachment; filename="conversation-{history["lab_talk"].pk}.json"'
    document = json.loads(response.content)
    (conversation,) = document["conversations"]
    assert [m["content"] for m in conversation["messages"]] == [
        "How do otters open shellfish?",
        "Sea otters use rocks as tools [1, pp. 2].",
        "And the beavers?",
        "",
    ]
    answer = conversation["messages"][1]
    assert answer["citations"][0]["references"][0] == {
        "number": 1,
        "file_id": "f-otters",
        "file_name": "otters.pdf",
        "pages": [2],
        "url": "http://testserver/rooms/lab/files/f-otters/?page=2#page-2",  # absolute: it leaves the site
    }
    assert answer["usage"] == {"prompt_tokens": 100, "completion_tokens": 20}
    assert answer["model"] == "offline" and answer["status"] == "complete" and answer["author"] == "handbook"
    assert conversation["messages"][0]["author"] == "alice" and conversation["messages"][0]["created_at"].endswith("Z")
    assert conversation["messages"][3]["error"] == "The model failed: boom"
    assert conversation["usage"] == {"turns": 2, "prompt_tokens": 200, "completion_tokens": 40}


def test_admin_actions_export_the_selected_set_as_json_and_markdown(world, history) -> None:
    _boss, client = superuser_client()
    selected = [history["lab_talk"].pk, history["other_talk"].pk]
    response = client.post(LIST, {"action": "export_json", "_selected_action": selected})
    document = json.loads(response.content)
    assert {c["title"] for c in document["conversations"]} == {"Otter questions", "Bee questions"}
    assert sum(len(c["messages"]) for c in document["conversations"]) == 6
    markdown = client.post(LIST, {"action": "export_markdown", "_selected_action": selected}).content.decode()
    assert markdown.count("\n# ") + markdown.startswith("# ") == 2
    for text in ("## alice", "## handbook (assistant)", "Sea otters use rocks", "On the comb, with a waggle."):
        assert text in markdown
    assert "1. [otters.pdf, pp. 2](http://testserver/rooms/lab/files/f-otters/?page=2#page-2)" in markdown
    assert "model offline · temperature 0.3" in markdown and "100 prompt + 20 completion tokens" in markdown
    assert "> **Error:** The model failed: boom" in markdown and "· failed" in markdown


def test_members_export_conversations_of_their_rooms(world, history) -> None:
    client = login(world["bob"])
    talk = history["lab_talk"]
    response = client.get(f"/rooms/lab/conversations/{talk.pk}/export.json")
    assert response.status_code == 200
    document = json.loads(response.content)
    assert len(document["conversations"][0]["messages"]) == 4
    assert document["conversations"][0]["messages"][1]["citations"][0]["references"][0]["file_name"] == "otters.pdf"
    markdown = client.get(f"/rooms/lab/conversations/{talk.pk}/export.md")
    assert markdown["Content-Type"].startswith("text/markdown")
    assert "Sea otters use rocks as tools" in markdown.content.decode()
    page = client.get(f"/rooms/lab/?c={talk.pk}").content.decode()
    assert f"/rooms/lab/conversations/{talk.pk}/export.md" in page
    assert f"/rooms/lab/conversations/{talk.pk}/export.json" in page


@pytest.mark.parametrize("fmt", ["json", "md"])
def test_exports_refuse_strangers_and_members_of_other_rooms(world, history, fmt) -> None:
    from tests.rooms.helpers import make_user

    talk = history["lab_talk"]
    stranger = login(make_user("stranger"))
    carol = login(world["carol"])  # a member of "other", not of "lab"
    for client in (stranger, carol):
        assert client.get(f"/rooms/lab/conversations/{talk.pk}/export.{fmt}").status_code == 404
    # Through her own room's address she still cannot reach lab's conversation.
    assert carol.get(f"/rooms/other/conversations/{talk.pk}/export.{fmt}").status_code == 404
    assert carol.get(f"/rooms/other/conversations/{history['other_talk'].pk}/export.{fmt}").status_code == 200
    anonymous = login(world["alice"])
    anonymous.logout()
    response = anonymous.get(f"/rooms/lab/conversations/{talk.pk}/export.{fmt}")
    assert response.status_code == 302 and "login" in response["Location"]


def test_an_archived_room_exports_nothing_to_members(world, history) -> None:
    Room.objects.filter(pk=world["lab"].pk).update(archived=True)
    assert (
        login(world["alice"]).get(f"/rooms/lab/conversations/{history['lab_talk'].pk}/export.json").status_code == 404
    )


# --- usage ------------------------------------------------------------------------------------------------------


def test_usage_counts_turns_and_tokens_per_day_room_member_and_model(world, history) -> None:
    today = timezone.localdate()
    old = answered(history["lab_talk"], world["alice"], "old question", "old answer")
    Message.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))
    report = usage_report(rooms=Room.objects.all(), start=today - timedelta(days=6), end=today)
    rows = {(r.room, r.member, r.model): r for r in report.rows}
    assert set(rows) == {("Lab", "alice", "offline"), ("Lab", "bob", "replay"), ("Other", "carol", "offline")}
    assert rows[("Lab", "bob", "replay")].failed == 1
    assert rows[("Lab", "alice", "offline")].turns == 1  # the 40-day-old answer is outside the range
    assert all(r.day == today for r in report.rows)
    assert (report.total.turns, report.total.prompt_tokens, report.total.completion_tokens) == (3, 300, 60)
    by_room = usage_report(rooms=Room.objects.all(), start=today, end=today, group_by=("room",))
    assert {r.room: r.turns for r in by_room.rows} == {"Lab": 2, "Other": 1}
    wide = usage_report(rooms=Room.objects.all(), start=today - timedelta(days=60), end=today, group_by=("member",))
    assert {r.member: r.turns for r in wide.rows} == {"alice": 2, "bob": 1, "carol": 1}
    mine = usage_report(rooms=Room.objects.filter(pk=world["other"].pk), start=today, end=today)
    assert [r.member for r in mine.rows] == ["carol"]


def test_the_usage_page_has_a_date_range_and_is_linked_from_rooms_and_the_index(world, history) -> None:
    client = login(room_manager())
    today = timezone.localdate().isoformat()
    page = client.get("/admin/assistant_chat/usage/", {"start": today, "end": today, "by_room": "1", "by_model": "1"})
    assert page.status_code == 200
    rows = {(r.room, r.model): r.turns for r in page.context["report"].rows}
    assert rows == {("Lab", "offline"): 1, ("Lab", "replay"): 1, ("Other", "offline"): 1}
    assert 'type="date" name="start"' in page.content.decode()
    assert "/admin/assistant_chat/usage/" in client.get("/admin/").content.decode()
    room_page = client.get(f"/admin/assistant_chat/room/{world['lab'].pk}/change/").content.decode()
    assert f"/admin/assistant_chat/usage/?room={world['lab'].pk}" in room_page
    filtered = client.get("/admin/assistant_chat/usage/", {"room": world["lab"].pk})
    assert {r.room for r in filtered.context["report"].rows} == {"Lab"}


def test_the_usage_page_needs_a_permission(world, history) -> None:
    assert login(staff_with("clerk")).get("/admin/assistant_chat/usage/").status_code == 403


def test_the_admin_search_also_works_past_the_listed_conversation_limit(world, history, monkeypatch) -> None:
    monkeypatch.setattr(history_search, "MAX_LISTED_CONVERSATIONS", 0)  # filter through the subquery instead
    assert history_search.conversation_ids_matching("shellfish") is None
    _boss, client = superuser_client()
    assert titles(client, q="shellfish") == ["Otter questions"]
