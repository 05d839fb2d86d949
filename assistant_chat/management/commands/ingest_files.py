"""`manage.py ingest_files ASSISTANT PATH... [--metadata JSON]`: upload files or whole folders, with progress."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from ... import errors, services
from ...knowledge.parsers import SUPPORTED_EXTENSIONS
from ...models import Assistant, File


class Command(BaseCommand):
    help = (
        "Ingest files (or every supported file under folders) into an assistant, with a progress bar. "
        f"Supported: {', '.join(sorted(SUPPORTED_EXTENSIONS))}."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("assistant", help="Name of the assistant; created if missing with --create.")
        parser.add_argument("paths", nargs="+", help="Files or folders (folders are walked recursively).")
        parser.add_argument(
            "--metadata", default=None, help='Metadata for every file, e.g. \'{"resource": "handbook"}\'.'
        )
        parser.add_argument("--create", action="store_true", help="Create the assistant if it does not exist.")

    def handle(self, *args: Any, **options: Any) -> None:
        assistant = Assistant.objects.filter(name=options["assistant"]).first()
        if assistant is None:
            if not options["create"]:
                raise CommandError(f'No assistant named "{options["assistant"]}" (pass --create to create it)')
            try:
                assistant = services.assistant_create(name=options["assistant"])
            except errors.ChatError as exc:
                raise CommandError(exc.message) from None
        metadata = None
        if options["metadata"]:
            try:
                metadata = json.loads(options["metadata"])
            except ValueError as exc:
                raise CommandError(f"--metadata is not valid JSON: {exc}") from None
        paths = list(_expand(options["paths"]))
        if not paths:
            raise CommandError("No supported files found")
        failed = 0
        with tqdm(total=len(paths), unit="file", disable=None) as bar:
            for path in paths:
                bar.set_postfix_str(path.name[-40:])
                try:
                    file, _operation, job = services.file_upload(
                        assistant=assistant, name=path.name, data=path.read_bytes(), metadata=metadata
                    )
                except errors.ChatError as exc:
                    failed += 1
                    bar.write(self.style.ERROR(f"{path}: {exc.message}"))
                    bar.update(1)
                    continue
                # Run here unless a worker took it first: the command needs no worker running.
                status = job.run_here()
                if status != File.Status.AVAILABLE:
                    failed += 1
                    file.refresh_from_db()
                    bar.write(self.style.ERROR(f"{path}: {status}: {file.error_message}"))
                bar.update(1)
        done = len(paths) - failed
        self.stdout.write(self.style.SUCCESS(f"{done} of {len(paths)} file(s) ingested into {assistant.name}"))
        if failed:
            raise CommandError(f"{failed} file(s) failed")


def _expand(raw_paths: list[str]) -> Any:
    for raw in raw_paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_EXTENSIONS)
        elif path.is_file():
            yield path
        else:
            raise CommandError(f"{raw}: no such file or folder")
