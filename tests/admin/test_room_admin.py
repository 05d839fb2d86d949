"""Room configuration in the admin: model choices from the registry, temperature and filter validation, the live
file count, the audit trail, and that a change applies to the room's next answer."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry

from assistant_chat.models import ModelEndpoint, Room
from tests.admin.conftest import room_form, superuser_client
from tests.providers.replay_server import ReplayServer
from tests.rooms.helpers import Socket, adb, make_room, openai_stream

pytestmark = pytest.mark.django_db(transaction=True)


def change_url(room: Room) -> str:
    return f"/admin/assistant_chat/room/{room.pk}/change/"


@pytest.mark.parametrize(
    ("typed", "problem"),
    [
        ('{"team": {"$regex": "a.*"}}', 'Unknown operator "$regex"'),
        ('{"team": null}', 'Null is not a valid value at "team"'),
        ('{"team": ', "not valid JSON"),
        ('["team"]', "must be a JSON object"),
        ('{"year": {"$gt": "2020"}}', "$gt"),
    ],
)
def test_a_malformed_filter_is_refused_on_the_field_with_the_problem_named(world, typed, problem) -> None:
    _boss, client = superuser_client()
    response = client.post(change_url(world["lab"]), room_form(world["lab"], metadata_filter=typed))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "metadata_filter" in errors and problem in errors["metadata_filter"][0], errors
    assert problem in response.content.decode().replace("&quot;", '"')
    world["lab"].refresh_from_db()
    assert world["lab"].metadata_filter == {}


def test_a_valid_filter_is_saved_as_json(world) -> None:
    _boss, client = superuser_client()
    typed = '{"team": {"$in": ["insects", "birds"]}}'
    response = client.post(change_url(world["lab"]), room_form(world["lab"], metadata_filter=typed))
    assert response.status_code == 302, response.content.decode()[:3000]
    world["lab"].refresh_from_db()
    assert world["lab"].metadata_filter == {"team": {"$in": ["insects", "birds"]}}


def test_model_choices_come_from_the_registry_and_mark_unavailable_ones(world, settings) -> None:
    settings.OPENAI_API_KEY = ""
    ModelEndpoint.objects.create(model_id="llama-local", base_url="http://127.0.0.1:9/v1", upstream_model="llama")
    ModelEndpoint.objects.create(
        model_id="switched-off", base_url="http://127.0.0.1:9/v1", upstream_model="x", enabled=False
    )
    _boss, client = superuser_client()
    page = client.get(change_url(world["lab"]))
    choices = dict(page.context["adminform"].form.fields["model"].choices)
    assert choices[""].startswith("Default (now offline)")
    assert "unavailable: set OPENAI_API_KEY" in choices["gpt-4o"]
    assert "unavailable: set ANTHROPIC_API_KEY" in choices["claude-3-7-sonnet"]
    assert "unavailable" not in choices["offline"] and "unavailable" not in choices["llama-local"]
    assert "switched-off" not in choices


def test_choosing_an_unavailable_model_is_refused_naming_the_variable(world, settings) -> None:
    settings.OPENAI_API_KEY = ""
    _boss, client = superuser_client()
    response = client.post(change_url(world["lab"]), room_form(world["lab"], model="gpt-4.1"))
    assert response.status_code == 200
    assert "OPENAI_API_KEY" in response.context["adminform"].form.errors["model"][0]


def test_a_room_on_a_remote_assistant_may_choose_a_model_the_remote_runs(world, settings) -> None:
    settings.OPENAI_API_KEY = ""
    world["lab"].assistant.remote_name = "books"
    world["lab"].assistant.save()
    _boss, client = superuser_client()
    response = client.post(change_url(world["lab"]), room_form(world["lab"], model="gpt-4.1"))
    assert response.status_code == 302, response.context["adminform"].form.errors
    world["lab"].refresh_from_db()
    assert world["lab"].model == "gpt-4.1"


@pytest.mark.parametrize(
    ("temperature", "problem"), [("2.5", "less than or equal to 2"), ("-1", "greater than or equal to 0")]
)
def test_temperature_outside_0_to_2_is_refused(world, temperature, problem) -> None:
    _boss, client = superuser_client()
    response = client.post(change_url(world["lab"]), room_form(world["lab"], temperature=temperature))
    assert response.status_code == 200
    assert problem in response.context["adminform"].form.errors["temperature"][0]


def test_temperature_is_checked_against_the_models_maximum(world) -> None:
    ModelEndpoint.objects.create(
        model_id="cool-model", base_url="http://127.0.0.1:9/v1", upstream_model="m", temperature_max=1.0
    )
    _boss, client = superuser_client()
    response = client.post(change_url(world["lab"]), room_form(world["lab"], model="cool-model", temperature="1.5"))
    assert response.status_code == 200
    assert "between 0 and 1" in response.context["adminform"].form.errors["temperature"][0]
    response = client.post(change_url(world["lab"]), room_form(world["lab"], model="cool-model", temperature="0.9"))
    assert response.status_code == 302


def test_a_model_that_ignores_temperature_gets_a_note(world, settings) -> None:
    settings.OPENAI_API_KEY = "sk-test"
    _boss, client = superuser_client()
    response = client.post(
        change_url(world["lab"]), room_form(world["lab"], model="o4-mini", temperature="0.5"), follow=True
    )
    assert response.status_code == 200
    notes = [str(m) for m in response.context["messages"]]
    assert any('"o4-mini" ignores the temperature' in note for note in notes), notes
    world["lab"].refresh_from_db()
    assert (world["lab"].model, world["lab"].temperature) == ("o4-mini", 0.5)
    page = client.get(change_url(world["lab"])).content.decode()
    assert "o4-mini" in page and "data-ignores-temperature" in page  # the form's script shows the note live


def test_the_live_file_count_endpoint_and_the_change_page(world) -> None:
    _boss, client = superuser_client()
    url = "/admin/assistant_chat/room/filter-count/"
    counted = client.get(url, {"assistant": world["assistant"].pk, "filter": '{"team": "insects"}'}).json()
    assert counted == {"valid": True, "error": "", "matching": 1, "total": 2, "names": ["bees.txt"]}
    everything = client.get(url, {"assistant": world["assistant"].pk, "filter": ""}).json()
    assert (everything["matching"], everything["total"]) == (2, 2)
    wrong = client.get(url, {"assistant": world["assistant"].pk, "filter": '{"team": {"$near": 1}}'}).json()
    assert wrong["valid"] is False and '"$near"' in wrong["error"]

    world["lab"].metadata_filter = {"team": "insects"}
    world["lab"].save()
    page = client.get(change_url(world["lab"])).content.decode()
    assert "1 of 2 files match: bees.txt" in page
    assert "assistant_chat/admin_room.js" in page and "data-count-url" in page


def test_the_live_count_is_for_staff_only(world) -> None:
    from tests.admin.conftest import login

    response = login(world["alice"]).get("/admin/assistant_chat/room/filter-count/", {"filter": "{}"})
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_rooms_are_created_with_members_and_groups(world) -> None:
    from django.contrib.auth.models import Group

    team = Group.objects.create(name="Research")
    _boss, client = superuser_client()
    page = client.get("/admin/assistant_chat/room/add/").content.decode()
    assert 'id="id_members"' in page and "selectfilter" in page.lower()  # filter_horizontal widgets
    response = client.post(
        "/admin/assistant_chat/room/add/",
        {
            "name": "Research",
            "slug": "research",
            "assistant": world["assistant"].pk,
            "model": "offline",
            "temperature": "0.2",
            "metadata_filter": '{"team": "wildlife"}',
            "instructions": "Be brief.",
            "members": [world["alice"].pk],
            "member_groups": [team.pk],
            "reply_mode": "addressed",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    room = Room.objects.get(slug="research")
    assert (room.model, room.temperature, room.metadata_filter, room.reply_mode) == (
        "offline",
        0.2,
        {"team": "wildlife"},
        "addressed",
    )
    assert list(room.members.all()) == [world["alice"]] and list(room.member_groups.all()) == [team]


def test_changes_are_logged_with_old_and_new_values_and_shown_on_the_room(world) -> None:
    boss, client = superuser_client()
    world["lab"].temperature = 0.2
    world["lab"].save()
    response = client.post(
        change_url(world["lab"]),
        room_form(
            world["lab"],
            model="",
            temperature="0.7",
            metadata_filter='{"team": "insects"}',
            members=[world["alice"].pk, world["carol"].pk],
            archived="on",
        ),
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    entry = LogEntry.objects.get(object_id=str(world["lab"].pk), action_flag=2)
    message = entry.get_change_message()
    assert entry.user == boss
    assert 'model: "offline" → default' in message
    assert "temperature: 0.2 → 0.7" in message
    assert 'metadata filter: none (all files) → {"team": "insects"}' in message
    assert "members: +carol" in message and "archived: False → True" in message
    page = client.get(change_url(world["lab"])).content.decode()
    assert "temperature: 0.2 → 0.7" in page and "boss" in page  # the room's history on its change page
    history = client.get(f"/admin/assistant_chat/room/{world['lab'].pk}/history/").content.decode()
    assert "temperature: 0.2 → 0.7" in history


def test_reformatting_the_same_filter_is_not_a_change(world) -> None:
    _boss, client = superuser_client()
    world["lab"].metadata_filter = {"team": "insects"}
    world["lab"].save()
    response = client.post(change_url(world["lab"]), room_form(world["lab"], metadata_filter='{ "team" :  "insects" }'))
    assert response.status_code == 302
    assert LogEntry.objects.get(object_id=str(world["lab"].pk)).get_change_message() == "No fields changed."


# --- a change applies to the next answer, with no restart ---------------------------------------------------------


async def ask_and_wait(user, slug: str, conversation_id: int, content: str) -> dict:
    socket = Socket(user, slug)
    assert await socket.connect()
    await socket.until("room.joined")
    await socket.send({"type": "message.send", "conversation_id": conversation_id, "content": content})
    done = await socket.until("assistant.done")
    await socket.close()
    return done["message"]


def cited_files(answer: dict) -> set[str]:
    return {ref["file_name"] for citation in answer["citations"] for ref in citation["references"]}


async def test_changing_the_filter_in_the_admin_changes_the_next_answer(world) -> None:
    from assistant_chat import services

    conversation = await adb(services.conversation_create)(room=world["lab"], user=world["alice"], title="Q")
    otters = "What do sea otters use as tools to crack shellfish?"
    before = await ask_and_wait(world["alice"], "lab", conversation.pk, otters)
    assert cited_files(before) == {"otters.txt"} and before["metadata_filter"] is None

    _boss, client = await adb(superuser_client)()
    data = await adb(room_form)(world["lab"], metadata_filter='{"team": "insects"}')
    response = await adb(client.post)(change_url(world["lab"]), data)
    assert response.status_code == 302

    fresh = await adb(services.conversation_create)(room=world["lab"], user=world["alice"], title="Again")
    after = await ask_and_wait(world["alice"], "lab", fresh.pk, otters)
    assert cited_files(after) == set() and "rocks" not in after["content"]  # the otters file is filtered out now
    assert after["metadata_filter"] == {"team": "insects"}
    bees = await ask_and_wait(world["alice"], "lab", fresh.pk, "Why do honeybees dance for other bees?")
    assert cited_files(bees) == {"bees.txt"}


async def test_changing_the_model_in_the_admin_changes_the_next_answer(world) -> None:
    from assistant_chat import services

    conversation = await adb(services.conversation_create)(room=world["lab"], user=world["alice"], title="Q")
    before = await ask_and_wait(world["alice"], "lab", conversation.pk, "How do otters open shellfish?")
    assert before["model"] == "offline"

    async with ReplayServer(openai_stream(["Rocks", ", mostly."])) as upstream:
        await adb(ModelEndpoint.objects.create)(model_id="replay", base_url=f"{upstream.url}/v1", upstream_model="up")
        _boss, client = await adb(superuser_client)()
        data = await adb(room_form)(world["lab"], model="replay", temperature="0.4")
        response = await adb(client.post)(change_url(world["lab"]), data)
        assert response.status_code == 302, response.content.decode()[:2000]
        after = await ask_and_wait(world["alice"], "lab", conversation.pk, "And what else?")
        assert after["model"] == "replay" and after["content"] == "Rocks, mostly." and after["temperature"] == 0.4
        assert upstream.requests[-1].body["temperature"] == 0.4


def test_a_room_in_another_assistant_lists_its_own_files(world) -> None:
    from tests.rooms.helpers import make_assistant

    second = make_assistant("archive")
    make_room("archive-room", second, [], metadata_filter={"team": "wildlife"})
    _boss, client = superuser_client()
    room = Room.objects.get(slug="archive-room")
    assert "1 of 2 files match: otters.txt" in client.get(change_url(room)).content.decode()
    assert "archive-room" in client.get("/admin/assistant_chat/room/").content.decode()
