"""`manage.py setup_demo`: the first-run set-up the README's run command performs, safe to repeat.

Creates the `demo` assistant with the project's own demo documents (several formats, with metadata to filter
on), a `demo` room on it, and on the very first run an admin account with a random password and an API key,
each printed once.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

from ... import services
from ...knowledge.demo_documents import demo_files
from ...models import ApiKey, Assistant, Conversation, File, Room

DEMO_ASSISTANT = "demo"
DEMO_ROOM = "demo"
DEMO_INSTRUCTIONS = "Answer from the demo documents. Be concise and cite your sources."


class Command(BaseCommand):
    help = "Create the demo assistant and, on first run, an admin account and an API key (each printed once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--admin-username", default="admin")
        parser.add_argument("--no-admin", action="store_true", help="Do not create an admin account.")

    def handle(self, *args: Any, **options: Any) -> None:
        assistant = self._demo_assistant()
        if not options["no_admin"]:
            self._first_admin(options["admin_username"])
        self._demo_room(assistant)
        if not ApiKey.objects.exists():
            _key, raw_key = services.api_key_create(name="first run")
            self.stdout.write(self.style.WARNING(f"API key (shown once, may manage every assistant): {raw_key}"))

    def _demo_assistant(self) -> Assistant:
        assistant = Assistant.objects.filter(name=DEMO_ASSISTANT).first()
        if assistant is None:
            assistant = services.assistant_create(name=DEMO_ASSISTANT, instructions=DEMO_INSTRUCTIONS)
        present = set(File.objects.filter(assistant=assistant).values_list("name", flat=True))
        added = 0
        for demo in demo_files():
            if demo.name in present:
                continue
            _file, _op, job = services.file_upload(
                assistant=assistant, name=demo.name, data=demo.data, metadata=demo.metadata
            )
            status = job.run_here()  # bin/run sets up before its worker starts
            added += 1
            self.stdout.write(f"  demo file {demo.name}: {status}")
        self.stdout.write(f"Demo assistant '{DEMO_ASSISTANT}' ready ({added} file(s) added).")
        return assistant

    def _demo_room(self, assistant: Assistant) -> None:
        room, created = Room.objects.get_or_create(
            slug=DEMO_ROOM,
            defaults={"name": "Demo room", "assistant": assistant, "instructions": "Answer for the whole team."},
        )
        if created:
            room.members.set(get_user_model().objects.filter(is_superuser=True))
            Conversation.objects.create(room=room, title="Welcome")
            self.stdout.write(f"Demo room ready at /rooms/{DEMO_ROOM}/ (add members in the admin).")

    def _first_admin(self, username: str) -> None:
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            return
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        self.stdout.write(
            self.style.WARNING(
                f"Admin account created: username '{username}', password '{password}'. "
                "It is shown only this once; change it in the admin."
            )
        )
