"""Fixtures for the rooms admin: a world of two rooms on one assistant, staff of several kinds, saved history."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client

from assistant_chat import services
from assistant_chat.models import Conversation, Message
from tests.rooms.helpers import make_assistant, make_room, make_user

ROOM_FORM = {
    "reply_mode": "every",
    "instructions": "",
    "temperature": "",
    "model": "",
    "metadata_filter": "",
}


@pytest.fixture
def world() -> Any:
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    assistant = make_assistant()
    lab = make_room("lab", assistant, [alice, bob], model="offline")
    other = make_room("other", assistant, [carol], model="offline")
    yield {"alice": alice, "bob": bob, "carol": carol, "assistant": assistant, "lab": lab, "other": other}


def room_form(room: Any, **changes: Any) -> dict[str, Any]:
    """The room's change form as the admin would post it, with `changes` applied."""
    import json

    data = {
        **ROOM_FORM,
        "name": room.name,
        "slug": room.slug,
        "assistant": room.assistant_id,
        "model": room.model,
        "temperature": "" if room.temperature is None else room.temperature,
        "metadata_filter": json.dumps(room.metadata_filter) if room.metadata_filter else "",
        "instructions": room.instructions,
        "members": [u.pk for u in room.members.all()],
        "member_groups": [g.pk for g in room.member_groups.all()],
        "reply_mode": room.reply_mode,
    }
    if room.archived:
        data["archived"] = "on"
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def login(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def superuser_client() -> tuple[Any, Client]:
    boss = make_user("boss", is_staff=True, is_superuser=True)
    return boss, login(boss)


def room_managers_group() -> Group:
    """The group migration 0006 creates (transactional tests flush it away with the rest of the data)."""
    import importlib

    migration = importlib.import_module("assistant_chat.migrations.0006_room_managers_group")
    group, _ = Group.objects.get_or_create(name=migration.GROUP)
    for model, codename in migration.PERMISSIONS:
        group.permissions.add(
            Permission.objects.get(
                content_type__app_label="assistant_chat", content_type__model=model, codename=codename
            )
        )
    return group


def room_manager() -> Any:
    manager = make_user("manager", is_staff=True)
    manager.groups.add(room_managers_group())
    return manager


def staff_with(username: str, *codenames: str) -> Any:
    user = make_user(username, is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="assistant_chat", codename__in=codenames)
    )
    return user


def answered(conversation: Conversation, asker: Any, question: str, answer: str, **fields: Any) -> Message:
    """A saved question and its answer, as a finished turn leaves them."""
    asked = Message.objects.create(conversation=conversation, role="user", author=asker, content=question)
    defaults: dict[str, Any] = {"model": "offline", "prompt_tokens": 100, "completion_tokens": 20, "total_ms": 12.5}
    defaults.update(fields)
    return Message.objects.create(
        conversation=conversation, role="assistant", reply_to=asked, content=answer, **defaults
    )


@pytest.fixture
def history(world: Any) -> Any:
    """A conversation in each room, with citations, usage and a failed answer."""
    lab_talk = services.conversation_create(room=world["lab"], user=world["alice"], title="Otter questions")
    good = answered(
        lab_talk,
        world["alice"],
        "How do otters open shellfish?",
        "Sea otters use rocks as tools [1, pp. 2].",
        citations=[
            {
                "position": 29,
                "references": [{"number": 1, "file_id": "f-otters", "file_name": "otters.pdf", "pages": [2]}],
            }
        ],
        first_token_ms=4.0,
        temperature=0.3,
        metadata_filter={"team": "wildlife"},
    )
    failed = answered(
        lab_talk, world["bob"], "And the beavers?", "", status="failed", error="The model failed: boom", model="replay"
    )
    other_talk = services.conversation_create(room=world["other"], user=world["carol"], title="Bee questions")
    secret = answered(other_talk, world["carol"], "Where do honeybees dance?", "On the comb, with a waggle.")
    return {"lab_talk": lab_talk, "good": good, "failed": failed, "other_talk": other_talk, "secret": secret}
