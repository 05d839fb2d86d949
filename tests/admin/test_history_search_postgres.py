"""Message search on PostgreSQL (generated tsvector + GIN, migration 0005), run in a subprocess on a fresh database
migrated from scratch, since the rest of the suite runs on SQLite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid

import pytest

from tests.support import servers

pytestmark = pytest.mark.postgres

SCRIPT = textwrap.dedent(
    """
    import json
    from django.test.utils import setup_test_environment
    setup_test_environment()  # so that responses carry their template context
    from django.contrib.auth import get_user_model
    from django.db import connection
    from assistant_chat import services
    from assistant_chat.review import search as history_search
    from assistant_chat.models import Conversation, Message, Room
    from django.test import Client

    user = get_user_model().objects.create_superuser("boss", "", "x")
    assistant = services.assistant_create(name="pg-history")
    lab = Room.objects.create(name="Lab", slug="lab", assistant=assistant)
    other = Room.objects.create(name="Other", slug="other", assistant=assistant)
    talk = Conversation.objects.create(room=lab, title="Otters")
    Message.objects.create(conversation=talk, role="user", author=user, content="How do sea otters open shellfish?")
    answer = Message.objects.create(conversation=talk, role="assistant", content="They use rocks as tools.")
    secret = Conversation.objects.create(room=other, title="Bees")
    Message.objects.create(conversation=secret, role="user", author=user, content="Where do honeybees dance?")
    out = {}
    out["stemmed"] = [h.message_id for h in history_search.search_messages(query="otter shellfishes", room_ids=[lab.pk])]
    out["other_room"] = [h.message_id for h in history_search.search_messages(query="honeybees", room_ids=[lab.pk])]
    out["snippet"] = str(history_search.search_messages(query="tools", room_ids=[lab.pk])[0].snippet)
    Message.objects.filter(pk=answer.pk).update(content="Nothing useful here.")
    out["after_update"] = [h.message_id for h in history_search.search_messages(query="tools", room_ids=[lab.pk])]
    out["syntax"] = [h.message_id for h in history_search.search_messages(query="otters & !( | :*", room_ids=[lab.pk])]
    by_conversation = history_search.snippets_by_conversation(query="otters", conversation_ids=[talk.pk, secret.pk])
    out["snippets"] = sorted(by_conversation)
    client = Client()
    client.force_login(user)
    response = client.get("/admin/assistant_chat/conversation/", {"q": "shellfish"})
    out["admin_status"] = response.status_code
    out["admin_titles"] = [c.title for c in response.context["cl"].result_list]
    out["ids"] = {"question": Message.objects.get(content__startswith="How do").pk, "talk": talk.pk}
    print("RESULT" + json.dumps(out))
    """
)


def test_message_search_on_postgresql(tmp_path) -> None:
    servers.require(servers.postgres_available())
    database_url = servers.create_postgres_database()
    try:
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "CHAT_VAR_DIR": str(tmp_path),
            "DJANGO_SECRET_KEY": "test-" + uuid.uuid4().hex,
            "DJANGO_ALLOWED_HOSTS": "testserver",
            "STATIC_MANIFEST": "false",
        }
        env.pop("REDIS_URL", None)
        run = {"cwd": servers.ROOT, "env": env, "capture_output": True, "text": True, "timeout": 300}
        migrated = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], **run)  # type: ignore[call-overload]
        assert migrated.returncode == 0, migrated.stderr
        result = subprocess.run([sys.executable, "manage.py", "shell", "-c", SCRIPT], **run)  # type: ignore[call-overload]
        assert result.returncode == 0, result.stderr[-3000:]
        out = json.loads(result.stdout.split("RESULT", 1)[1])
    finally:
        servers.drop_postgres_database(database_url)
    assert out["stemmed"] == [out["ids"]["question"]]
    assert out["other_room"] == []
    assert "<mark>tools</mark>" in out["snippet"]
    assert out["after_update"] == []  # the generated column follows the text
    assert out["syntax"] == [out["ids"]["question"]]  # operators typed are words, not tsquery syntax
    assert out["snippets"] == [out["ids"]["talk"]]
    assert out["admin_status"] == 200 and out["admin_titles"] == ["Otters"]
