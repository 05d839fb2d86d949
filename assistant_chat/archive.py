"""Moving an assistant between installations: one zip archive with its settings, its files' bytes and metadata.

`assistant_export` writes `manifest.json` (format, the assistant's fields, each file's id, name, metadata and
SHA-256) and `files/<n>` (each file's uploaded bytes). `assistant_import` checks everything before it writes
anything (format, names, sizes against FILE_MAX_BYTES, every hash), then creates the assistant and its files in
one transaction with their ingestion jobs, so the chunks are built by this installation's own parser and
embedder. Chunks, operations and API keys are not carried: they belong to an installation. Used by the
`export_assistant` / `import_assistant` commands.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import errors, services
from .jobs.ingest import FileJob
from .models import Assistant, File, FileBlob

FORMAT = "assistant-chat/assistant-archive"
VERSION = 1
MANIFEST = "manifest.json"
MANIFEST_MAX_BYTES = 64 * 1024 * 1024


class ArchiveError(errors.InvalidArgument):
    pass


def assistant_export(*, assistant: Assistant, out: IO[bytes] | Path) -> dict[str, Any]:
    """Write `assistant` (with every file that is not being deleted) to a zip archive; returns the manifest."""
    files = list(File.objects.filter(assistant=assistant).exclude(status=File.Status.DELETING).order_by("id"))
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": timezone.now().isoformat(),
        "assistant": {
            "name": assistant.name,
            "instructions": assistant.instructions,
            "metadata": assistant.metadata,
            "region": assistant.region,
            "remote_name": assistant.remote_name,
        },
        "files": [],
    }
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for number, file in enumerate(files):
            data = bytes(FileBlob.objects.values_list("data", flat=True).get(file_id=file.pk))
            member = f"files/{number}"
            archive.writestr(member, data)
            manifest["files"].append(
                {
                    "member": member,
                    "file_id": file.file_id,
                    "name": file.name,
                    "metadata": file.metadata,
                    "multimodal": file.multimodal,
                    "size": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "created_on": file.created_on.isoformat(),
                }
            )
        archive.writestr(MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False))
    return manifest


@dataclass
class ArchivedFile:
    member: str
    name: str
    sha256: str
    file_id: str
    metadata: dict
    multimodal: bool


def read_archive(source: IO[bytes] | Path) -> tuple[dict[str, Any], list[ArchivedFile]]:
    """Check an archive completely: format, entries, sizes (none over FILE_MAX_BYTES) and every file's SHA-256.
    Reads one file at a time and keeps none of them. Raises ArchiveError."""
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArchiveError(f"Not an assistant archive (not a zip file: {exc})") from None
    with archive:
        try:
            manifest = json.loads(_member(archive, MANIFEST, MANIFEST_MAX_BYTES))
        except ValueError as exc:
            raise ArchiveError(f"manifest.json is not valid JSON: {exc}") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise ArchiveError("Not an assistant archive (manifest.json does not name the format)")
        if manifest.get("version") != VERSION:
            raise ArchiveError(
                f"Archive version {manifest.get('version')!r} is not supported (this server reads {VERSION})"
            )
        if not isinstance(manifest.get("assistant"), dict) or not isinstance(manifest.get("files"), list):
            raise ArchiveError("The manifest has no assistant or no file list")
        files = [_check_file(archive, entry) for entry in manifest["files"]]
    return manifest, files


def _member(archive: zipfile.ZipFile, name: str, limit: int) -> bytes:
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise ArchiveError(f"The archive has no {name}") from None
    if info.file_size > limit:
        raise ArchiveError(f"{name} is {info.file_size} bytes, more than the {limit} allowed")
    try:
        with archive.open(info) as member:
            data = member.read(limit + 1)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ArchiveError(f"{name} cannot be read: {exc}") from None
    if len(data) > limit:
        raise ArchiveError(f"{name} is larger than the {limit} bytes allowed")
    return data


def _check_file(archive: zipfile.ZipFile, entry: Any) -> ArchivedFile:
    if not isinstance(entry, dict) or not all(k in entry for k in ("member", "name", "sha256", "file_id")):
        raise ArchiveError(f"A file entry of the manifest is incomplete: {str(entry)[:200]}")
    item = ArchivedFile(
        member=str(entry["member"]),
        name=str(entry["name"]),
        sha256=str(entry["sha256"]),
        file_id=str(entry["file_id"]),
        metadata=entry.get("metadata") or {},
        multimodal=bool(entry.get("multimodal")),
    )
    _file_bytes(archive, item)
    return item


def _file_bytes(archive: zipfile.ZipFile, item: ArchivedFile) -> bytes:
    data = _member(archive, item.member, settings.FILE_MAX_BYTES)
    if hashlib.sha256(data).hexdigest() != item.sha256:
        raise ArchiveError(f"{item.name}: its bytes do not match the manifest's SHA-256 (damaged archive)")
    return data


def assistant_import(*, source: Path, name: str | None = None) -> tuple[Assistant, list[FileJob]]:
    """Create the archived assistant (under `name` if given) with its files, queued for processing. Nothing is
    written unless the whole archive is sound and every file is accepted."""
    manifest, files = read_archive(source)
    fields = manifest["assistant"]
    with zipfile.ZipFile(source) as archive, transaction.atomic():
        assistant = services.assistant_create(
            name=name or fields.get("name"),
            instructions=fields.get("instructions"),
            metadata=fields.get("metadata"),
            region=fields.get("region") or "us",
        )
        if fields.get("remote_name"):
            assistant.remote_name = str(fields["remote_name"])[:63]
            assistant.save(update_fields=["remote_name"])
        jobs = []
        for item in files:
            try:
                _file, _operation, job = services.file_upload(
                    assistant=assistant,
                    name=item.name,
                    data=_file_bytes(archive, item),
                    metadata=item.metadata,
                    file_id=item.file_id,
                    multimodal=item.multimodal,
                )
            except errors.ChatError as exc:
                raise ArchiveError(f"{item.name}: {exc.message}") from None
            jobs.append(job)
    return assistant, jobs
