"""`manage.py export_assistant NAME ARCHIVE.zip`: write an assistant, its files and their metadata to an archive
that `import_assistant` reads on another installation (see assistant_chat/archive.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...archive import assistant_export
from ...models import Assistant


class Command(BaseCommand):
    help = "Export an assistant with its files and metadata to a zip archive (for import_assistant)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("assistant", help="Name of the assistant.")
        parser.add_argument("archive", help="Path of the archive to write (.zip); '-' writes to standard output.")

    def handle(self, *args: Any, **options: Any) -> None:
        assistant = (
            Assistant.objects.filter(name=options["assistant"]).exclude(status=Assistant.Status.TERMINATING).first()
        )
        if assistant is None:
            raise CommandError(f'No assistant named "{options["assistant"]}"')
        target = options["archive"]
        if target == "-":
            import sys

            assistant_export(assistant=assistant, out=sys.stdout.buffer)
            return
        path = Path(target)
        if path.exists():
            raise CommandError(f"{path} exists; choose another path (an export never overwrites)")
        partial = path.with_name(path.name + ".partial")
        try:
            manifest = assistant_export(assistant=assistant, out=partial)
            partial.rename(path)
        except OSError as exc:
            raise CommandError(f"Cannot write {path}: {exc.strerror or exc}") from None
        finally:
            partial.unlink(missing_ok=True)
        total = sum(item["size"] for item in manifest["files"])
        self.stdout.write(
            self.style.SUCCESS(f"Exported {assistant.name}: {len(manifest['files'])} file(s), {total} bytes, to {path}")
        )
