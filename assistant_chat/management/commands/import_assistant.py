"""`manage.py import_assistant ARCHIVE.zip [--name NEW]`: create an assistant from an export_assistant archive,
with its files and metadata, and process the files (here, unless --no-wait leaves them to the workers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from ... import errors
from ...archive import assistant_import
from ...models import File


class Command(BaseCommand):
    help = "Import an assistant archive made by export_assistant (a new assistant; existing ones are never changed)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("archive", help="The archive (.zip) written by export_assistant.")
        parser.add_argument("--name", default=None, help="Import under this name instead of the archived one.")
        parser.add_argument(
            "--no-wait", action="store_true", help="Queue the files for the job workers and return at once."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["archive"])
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        try:
            assistant, jobs = assistant_import(source=path, name=options["name"])
        except errors.ChatError as exc:
            raise CommandError(f"Nothing was imported: {exc.message}") from None
        self.stdout.write(f"Created assistant {assistant.name} with {len(jobs)} file(s).")
        if options["no_wait"]:
            self.stdout.write("Its files are queued; the job workers process them.")
            return
        failed = 0
        with tqdm(total=len(jobs), unit="file", disable=None) as bar:
            for job in jobs:
                status = job.run_here()
                failed += status != File.Status.AVAILABLE
                bar.update(1)
        message = f"Imported {assistant.name}: {len(jobs) - failed} of {len(jobs)} file(s) available"
        if failed:
            raise CommandError(message + f"; {failed} failed (see the admin for why)")
        self.stdout.write(self.style.SUCCESS(message))
