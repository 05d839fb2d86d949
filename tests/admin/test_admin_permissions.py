"""Who reaches the rooms admin: members never; staff only with permissions, and only for rooms they manage."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from assistant_chat.models import Room
from tests.admin.conftest import login, room_form, room_manager, staff_with

pytestmark = pytest.mark.django_db(transaction=True)

ADMIN_PAGES = [
    "/admin/",
    "/admin/assistant_chat/room/",
    "/admin/assistant_chat/conversation/",
    "/admin/assistant_chat/usage/",
]


def test_the_migration_creates_the_room_managers_group_with_the_room_permissions() -> None:
    import importlib

    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    migration = importlib.import_module("assistant_chat.migrations.0006_room_managers_group")
    Group.objects.filter(name="Room managers").delete()  # transactional tests flush data migrations' rows
    state = MigrationExecutor(connection).loader.project_state(("assistant_chat", "0006_room_managers_group"))
    migration.create_group(state.apps, None)
    group = Group.objects.get(name="Room managers")
    assert set(group.permissions.values_list("codename", flat=True)) == {
        "add_room",
        "change_room",
        "view_room",
        "manage_rooms",
        "view_conversation",
        "view_message",
        "view_usage",
    }


@pytest.mark.parametrize("url", ADMIN_PAGES)
def test_members_who_are_not_staff_never_reach_the_admin(world, history, url) -> None:
    client = login(world["alice"])
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    room_page = client.get(f"/admin/assistant_chat/room/{world['lab'].pk}/change/")
    assert room_page.status_code == 302
    posted = client.post(f"/admin/assistant_chat/room/{world['lab'].pk}/change/", room_form(world["lab"], model=""))
    assert posted.status_code == 302
    world["lab"].refresh_from_db()
    assert world["lab"].model == "offline"


def test_staff_without_the_permission_cannot_edit_rooms(world) -> None:
    client = login(staff_with("clerk"))
    url = f"/admin/assistant_chat/room/{world['lab'].pk}/change/"
    assert client.get(url).status_code == 403
    assert client.post(url, room_form(world["lab"], model="", temperature="1.0")).status_code == 403
    assert client.get("/admin/assistant_chat/room/").status_code == 403
    assert client.get("/admin/assistant_chat/room/add/").status_code == 403
    world["lab"].refresh_from_db()
    assert (world["lab"].model, world["lab"].temperature) == ("offline", None)


def test_staff_who_may_only_view_rooms_see_but_cannot_save(world) -> None:
    viewer = staff_with("viewer", "view_room", "manage_rooms")
    client = login(viewer)
    url = f"/admin/assistant_chat/room/{world['lab'].pk}/change/"
    page = client.get(url)
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert client.post(url, room_form(world["lab"], model="")).status_code == 403


def test_a_room_manager_edits_any_room(world) -> None:
    client = login(room_manager())
    for room in (world["lab"], world["other"]):
        response = client.post(f"/admin/assistant_chat/room/{room.pk}/change/", room_form(room, temperature="0.5"))
        assert response.status_code == 302
        room.refresh_from_db()
        assert room.temperature == 0.5


def test_staff_without_manage_rooms_act_only_on_rooms_they_belong_to(world, history) -> None:
    editor = staff_with("editor", "change_room", "view_room", "view_conversation")
    world["lab"].members.add(editor)
    client = login(editor)
    listing = client.get("/admin/assistant_chat/room/").content.decode()
    assert f"/admin/assistant_chat/room/{world['lab'].pk}/change/" in listing
    assert f"/admin/assistant_chat/room/{world['other'].pk}/change/" not in listing
    assert client.get(f"/admin/assistant_chat/room/{world['other'].pk}/change/").status_code == 302  # "not found"
    response = client.post(f"/admin/assistant_chat/room/{world['other'].pk}/change/", room_form(world["other"]))
    assert response.status_code in (302, 403, 404)
    assert Room.objects.get(pk=world["other"].pk).temperature is None
    # Their review list and search show only their rooms' conversations.
    conversations = client.get("/admin/assistant_chat/conversation/").content.decode()
    assert "Otter questions" in conversations and "Bee questions" not in conversations
    searched = client.get("/admin/assistant_chat/conversation/", {"q": "honeybees"}).content.decode()
    assert "Bee questions" not in searched
    assert client.get(f"/admin/assistant_chat/conversation/{history['other_talk'].pk}/change/").status_code == 302
    export = client.get(f"/admin/assistant_chat/conversation/{history['other_talk'].pk}/export.json")
    assert export.status_code == 404


def test_staff_may_not_edit_or_add_conversations(world, history) -> None:
    client = login(room_manager())
    url = f"/admin/assistant_chat/conversation/{history['lab_talk'].pk}/change/"
    page = client.get(url)
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert client.post(url, {"title": "Rewritten"}).status_code == 403
    assert client.get("/admin/assistant_chat/conversation/add/").status_code == 403
    history["lab_talk"].refresh_from_db()
    assert history["lab_talk"].title == "Otter questions"
    assert client.get("/admin/assistant_chat/message/").status_code == 404  # messages have no admin of their own
