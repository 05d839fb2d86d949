"""`manage.py create_api_key [--name N] [--assistant NAME ...]`: print a new API key once."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ... import services
from ...models import Assistant


class Command(BaseCommand):
    help = (
        "Create an API key for the Pinecone-compatible API and print it once (only its hash is stored). "
        "Without --assistant the key may create and manage any assistant."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", default="command line", help="A label for the key, shown in the admin.")
        parser.add_argument(
            "--assistant",
            action="append",
            default=[],
            metavar="NAME",
            help="Limit the key to this assistant (repeatable).",
        )
        parser.add_argument("--quiet", action="store_true", help="Print the key alone, for scripts.")

    def handle(self, *args: Any, **options: Any) -> None:
        names: list[str] = options["assistant"]
        assistants = list(Assistant.objects.filter(name__in=names))
        missing = sorted(set(names) - {assistant.name for assistant in assistants})
        if missing:
            raise CommandError(f"No assistant named {', '.join(missing)}")
        _key, raw_key = services.api_key_create(name=options["name"], assistants=assistants)
        if options["quiet"]:
            self.stdout.write(raw_key)
            return
        scope = ", ".join(names) if names else "every assistant (and may create new ones)"
        self.stdout.write(f"API key for {scope}:\n\n    {raw_key}\n\nIt is shown only this once.")
