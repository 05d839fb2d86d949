"""Which assistants staff may use (README, "Staff and assistants"): superusers and room managers every one, other
staff those that name them (or a group of theirs) as room staff. Every deny path of the admin is tested here."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group

from assistant_chat import services
from assistant_chat.models import ApiKey, Assistant, File, Room
from tests.admin.conftest import ROOM_FORM, login, room_form, room_manager, staff_with
from tests.rooms.helpers import make_room

pytestmark = pytest.mark.django_db(transaction=True)

CLERK_PERMISSIONS = (
    "add_room", "change_room", "view_room", "view_assistant", "change_assistant", "add_assistant", "view_file",
    "change_file", "view_operation", "add_apikey", "view_apikey", "change_apikey",
)  # fmt: skip


@pytest.fixture
def teams(world: Any) -> Any:
    secrets = services.assistant_create(name="secrets")
    services.file_upload(assistant=secrets, name="payroll.txt", data=b"Salaries of everyone.", metadata={"team": "hr"})[
        2
    ].result(30)
    clerk = staff_with("clerk", *CLERK_PERMISSIONS)
    world["assistant"].room_staff.add(clerk)  # clerk may use "handbook", not "secrets"
    hr_room = make_room("hr", secrets, [clerk], metadata_filter={"team": "nobody"}, model="offline")
    return {**world, "secrets": secrets, "clerk": clerk, "hr_room": hr_room}


def add_room(client: Any, assistant: Assistant, slug: str) -> Any:
    data = {**ROOM_FORM, "name": slug.title(), "slug": slug, "assistant": assistant.pk, "model": "offline"}
    return client.post("/admin/assistant_chat/room/add/", data)


def test_staff_create_rooms_only_on_assistants_they_may_use(teams: Any) -> None:
    client = login(teams["clerk"])
    form = client.get("/admin/assistant_chat/room/add/").content.decode()
    assert ">handbook<" in form and ">secrets<" not in form
    refused = add_room(client, teams["secrets"], "heist")
    assert refused.status_code == 200 and "Select a valid choice" in refused.content.decode()
    assert not Room.objects.filter(slug="heist").exists()
    assert add_room(client, teams["assistant"], "fine").status_code == 302
    assert Room.objects.get(slug="fine").assistant == teams["assistant"]


def test_the_filter_count_answers_only_for_assistants_the_caller_may_use(teams: Any) -> None:
    client = login(teams["clerk"])
    url = "/admin/assistant_chat/room/filter-count/"
    denied = client.get(url, {"assistant": teams["secrets"].pk, "filter": '{"team": "hr"}'})
    assert denied.status_code == 403 and "payroll" not in denied.content.decode()
    assert denied.json()["matching"] is None
    ghost = client.get(url, {"assistant": 999999, "filter": "{}"})
    assert ghost.status_code == 403  # the same answer as for an assistant that exists
    allowed = client.get(url, {"assistant": teams["assistant"].pk, "filter": '{"team": "wildlife"}'}).json()
    assert (allowed["matching"], allowed["total"], allowed["names"]) == (1, 2, ["otters.txt"])
    everyone = login(room_manager()).get(url, {"assistant": teams["secrets"].pk, "filter": "{}"}).json()
    assert everyone["names"] == ["payroll.txt"]


def test_a_room_member_may_not_widen_a_room_on_an_assistant_they_may_not_use(teams: Any) -> None:
    client = login(teams["clerk"])
    room = teams["hr_room"]
    page = client.get(f"/admin/assistant_chat/room/{room.pk}/change/").content.decode()
    assert "payroll" not in page and "Shown to staff who may use this room" in page
    assert 'name="metadata_filter"' not in page and 'name="assistant"' not in page
    posted = client.post(
        f"/admin/assistant_chat/room/{room.pk}/change/",
        room_form(room, metadata_filter="", assistant=teams["assistant"].pk, temperature="0.5"),
    )
    assert posted.status_code == 302
    room.refresh_from_db()
    assert room.metadata_filter == {"team": "nobody"} and room.assistant == teams["secrets"]
    assert room.temperature == 0.5  # what they may change still changes


def test_the_file_assistant_and_operation_lists_hide_assistants_the_staff_may_not_use(teams: Any) -> None:
    client = login(teams["clerk"])
    files = client.get("/admin/assistant_chat/file/").content.decode()
    assert "otters.txt" in files and "payroll.txt" not in files and "secrets" not in files
    payroll = File.objects.get(name="payroll.txt")
    assert client.get(f"/admin/assistant_chat/file/{payroll.pk}/change/").status_code == 302  # "does not exist"
    assistants = client.get("/admin/assistant_chat/assistant/").content.decode()
    assert "handbook" in assistants and "secrets" not in assistants
    assert client.get(f"/admin/assistant_chat/assistant/{teams['secrets'].pk}/change/").status_code == 302
    assert "secrets" not in client.get("/admin/assistant_chat/operation/").content.decode()


def test_staff_issue_keys_only_for_assistants_they_may_use(teams: Any) -> None:
    client = login(teams["clerk"])
    url = "/admin/assistant_chat/apikey/add/"
    unrestricted = client.post(url, {"name": "all"})
    assert unrestricted.status_code == 200 and "Choose the assistants this key may use" in unrestricted.content.decode()
    other = client.post(url, {"name": "theirs", "assistants": [teams["secrets"].pk]})
    assert other.status_code == 200 and "Select a valid choice" in other.content.decode()
    assert not ApiKey.objects.exists()
    assert client.post(url, {"name": "ours", "assistants": [teams["assistant"].pk]}).status_code == 302
    services.api_key_create(name="master")  # someone else's unrestricted key
    listed = client.get("/admin/assistant_chat/apikey/").content.decode()
    assert "ours" in listed and "master" not in listed


def test_an_assistant_a_limited_staff_user_creates_is_theirs_to_use(teams: Any) -> None:
    client = login(teams["clerk"])
    form = {"name": "fresh", "instructions": "", "metadata": "{}", "region": "us", "remote_name": ""}
    inline = {"files-TOTAL_FORMS": "0", "files-INITIAL_FORMS": "0"}  # the files inline's management form
    response = client.post("/admin/assistant_chat/assistant/add/", {**form, **inline})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert list(Assistant.objects.get(name="fresh").room_staff.all()) == [teams["clerk"]]


def test_a_group_grant_works_like_a_personal_one(teams: Any) -> None:
    hr = Group.objects.create(name="HR staff")
    teams["clerk"].groups.add(hr)
    teams["secrets"].room_staff_groups.add(hr)
    client = login(teams["clerk"])
    assert ">secrets<" in client.get("/admin/assistant_chat/room/add/").content.decode()
    assert client.get("/admin/assistant_chat/room/filter-count/", {"assistant": teams["secrets"].pk}).status_code == 200


def test_the_file_viewer_stays_closed_to_staff_outside_the_room(teams: Any) -> None:
    outsider = staff_with("outsider", *CLERK_PERMISSIONS)
    teams["secrets"].room_staff.add(outsider)  # may use the assistant in the admin, but is no member of the room
    payroll = File.objects.get(name="payroll.txt")
    assert login(outsider).get(f"/rooms/hr/files/{payroll.file_id}/").status_code == 404
    # A member sees only the files inside the room's filter.
    assert login(teams["clerk"]).get(f"/rooms/hr/files/{payroll.file_id}/").status_code == 404
