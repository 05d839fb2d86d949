"""Export and import of an assistant (`export_assistant` / `import_assistant`): files, bytes and metadata survive
the trip and are processed again; a damaged or foreign archive changes nothing. The trip between two real
installations (SQLite to PostgreSQL) is at the end."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import httpx
import pytest
from django.core.management import CommandError, call_command

from assistant_chat import services
from assistant_chat.knowledge.demo_documents import write_pdf
from assistant_chat.models import Assistant, Chunk, File, FileBlob
from tests.support import servers

pytestmark = pytest.mark.django_db(transaction=True)


def library() -> Assistant:
    assistant = services.assistant_create(name="library", instructions="Cite the shelf.", metadata={"team": "archive"})
    services.file_upload(
        assistant=assistant, name="otters.txt", data=b"Sea otters use rocks as tools.", metadata={"kind": "animal"}
    )
    services.file_upload(
        assistant=assistant,
        name="atlas.pdf",
        data=write_pdf(["Maps of the Alps.", "The Sahara has dunes."]),
        metadata={"kind": "earth", "year": 2023},
        file_id="atlas-2023",
    )
    return assistant


def snapshot(assistant: Assistant) -> list[tuple]:
    return [
        (f.file_id, f.name, f.metadata, f.status, hashlib.sha256(bytes(f.blob.data)).hexdigest(), f.chunks.count())
        for f in File.objects.filter(assistant=assistant).select_related("blob").order_by("file_id")
    ]


def test_an_exported_assistant_comes_back_with_its_files_and_metadata(tmp_path: Path) -> None:
    original = library()
    archive = tmp_path / "library.zip"
    out = io.StringIO()
    call_command("export_assistant", "library", str(archive), stdout=out)
    assert "2 file(s)" in out.getvalue()

    out = io.StringIO()
    call_command("import_assistant", str(archive), "--name", "library-copy", stdout=out)
    assert "2 of 2 file(s) available" in out.getvalue()
    copy = Assistant.objects.get(name="library-copy")
    assert (copy.instructions, copy.metadata) == ("Cite the shelf.", {"team": "archive"})
    assert snapshot(copy) == snapshot(original)
    assert {row[3] for row in snapshot(copy)} == {"Available"}
    assert all(row[5] > 0 for row in snapshot(copy))  # chunked again on import


def test_import_refuses_an_existing_name_and_an_export_never_overwrites(tmp_path: Path) -> None:
    library()
    archive = tmp_path / "library.zip"
    call_command("export_assistant", "library", str(archive), stdout=io.StringIO())
    with pytest.raises(CommandError, match="already exists"):
        call_command("import_assistant", str(archive), stdout=io.StringIO())
    with pytest.raises(CommandError, match="exists"):
        call_command("export_assistant", "library", str(archive), stdout=io.StringIO())
    with pytest.raises(CommandError, match="No assistant"):
        call_command("export_assistant", "nobody", str(tmp_path / "x.zip"), stdout=io.StringIO())


def rewrite(archive: Path, target: Path, *, manifest=None, member=None) -> Path:
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(target, "w") as out:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "manifest.json" and manifest is not None:
                data = json.dumps(manifest(json.loads(data))).encode()
            if member is not None and info.filename == member[0]:
                data = member[1]
            out.writestr(info.filename, data)
    return target


@pytest.mark.parametrize(
    "damage, message",
    [
        ({"member": ("files/0", b"tampered")}, "do not match"),
        ({"manifest": lambda m: {**m, "version": 99}}, "version 99 is not supported"),
        ({"manifest": lambda m: {**m, "format": "zip"}}, "Not an assistant archive"),
        ({"manifest": lambda m: {**m, "files": [{"name": "x"}]}}, "incomplete"),
    ],
)
def test_a_damaged_or_foreign_archive_imports_nothing(tmp_path: Path, damage: dict, message: str) -> None:
    library()
    archive = tmp_path / "library.zip"
    call_command("export_assistant", "library", str(archive), stdout=io.StringIO())
    bad = rewrite(archive, tmp_path / "bad.zip", **damage)
    before = (Assistant.objects.count(), File.objects.count(), FileBlob.objects.count(), Chunk.objects.count())
    with pytest.raises(CommandError, match=message):
        call_command("import_assistant", str(bad), "--name", "copy", stdout=io.StringIO())
    assert (Assistant.objects.count(), File.objects.count(), FileBlob.objects.count(), Chunk.objects.count()) == before


def test_a_file_that_is_not_a_zip_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    with pytest.raises(CommandError, match="not a zip file"):
        call_command("import_assistant", str(junk), stdout=io.StringIO())


@pytest.mark.postgres
@pytest.mark.live
def test_an_assistant_moves_between_two_installations(tmp_path: Path) -> None:
    """Exported from a SQLite installation, imported into a PostgreSQL one with its workers: same files and
    metadata through the API, and searchable there."""
    servers.require(servers.postgres_available())
    source = servers.start_server(tmp_path / "a")
    database_url = servers.create_postgres_database()
    target = servers.start_server(tmp_path / "b", database_url=database_url)
    try:
        key = {"Api-Key": source.api_key}
        httpx.post(f"{source.url}/assistant/assistants", headers=key, json={"name": "moving"}, timeout=30)
        for name, body, metadata in [
            ("a.txt", b"Honeybees dance to share where flowers are.", {"n": 1}),
            ("b.md", b"# Otters\n\nOtters hold hands.", {"n": 2}),
        ]:
            response = httpx.post(
                f"{source.url}/assistant/files/moving",
                headers=key,
                files={"file": (name, body)},
                data={"metadata": json.dumps(metadata)},
                timeout=30,
            )
            assert response.status_code == 200, response.text
        archive = tmp_path / "moving.zip"
        source.manage("export_assistant", "moving", str(archive))
        target.manage("import_assistant", str(archive))

        def files(server: servers.LiveServer) -> list[tuple]:
            body = httpx.get(
                f"{server.url}/assistant/files/moving", headers={"Api-Key": server.api_key}, timeout=30
            ).json()
            return sorted((f["id"], f["name"], f["metadata"], f["status"]) for f in body["files"])

        assert files(target) == files(source)
        context = httpx.post(
            f"{target.url}/assistant/chat/moving/context",
            headers={"Api-Key": target.api_key},
            json={"query": "Where do honeybees dance?"},
            timeout=30,
        ).json()
        assert "Honeybees dance" in context["snippets"][0]["content"]
    finally:
        source.stop()
        target.stop()
        servers.drop_postgres_database(database_url)


def test_an_export_to_a_place_it_cannot_write_says_so(tmp_path: Path) -> None:
    library()
    with pytest.raises(CommandError, match="Cannot write"):
        call_command("export_assistant", "library", str(tmp_path / "missing-folder" / "x.zip"), stdout=io.StringIO())
