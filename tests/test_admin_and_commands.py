"""The admin pages staff use for assistants, files and keys, and the management commands."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client

from assistant_chat import selectors, services
from assistant_chat.knowledge.demo_documents import demo_files
from assistant_chat.models import ApiKey, Assistant, File

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff(client: Client) -> Client:
    User.objects.create_superuser("boss", "", "pw-long-enough-123")
    client.login(username="boss", password="pw-long-enough-123")
    return client


def test_admin_upload_with_metadata_processes_the_file(staff: Client) -> None:
    assistant = services.assistant_create(name="handbook")
    response = staff.post(
        "/admin/assistant_chat/file/add/",
        {
            "assistant": assistant.pk,
            "upload": SimpleUploadedFile("rules.md", b"# Rules\n\nNo running in the corridors."),
            "metadata": '{"resource": "handbook"}',
            "chunks-TOTAL_FORMS": "0",
            "chunks-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    file = File.objects.get()
    assert (file.name, file.metadata, file.status) == ("rules.md", {"resource": "handbook"}, "Available")
    page = staff.get(f"/admin/assistant_chat/file/{file.pk}/change/").content.decode()
    assert "No running in the corridors." in page  # chunks are viewable
    listing = staff.get("/admin/assistant_chat/file/").content.decode()
    assert "Available" in listing and "100%" in listing


@pytest.mark.parametrize(
    ("metadata", "message"),
    [('{"a": null}', "null"), ('{"a": {"b": 1}}', "nested"), ("not json", "JSON")],
)
def test_admin_rejects_malformed_metadata_on_the_field(staff: Client, metadata: str, message: str) -> None:
    assistant = services.assistant_create(name="handbook")
    response = staff.post(
        "/admin/assistant_chat/file/add/",
        {
            "assistant": assistant.pk,
            "upload": SimpleUploadedFile("a.txt", b"text"),
            "metadata": metadata,
            "chunks-TOTAL_FORMS": "0",
            "chunks-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    assert message.lower() in response.content.decode().lower()
    assert not File.objects.exists()


def test_admin_rejects_unsupported_type(staff: Client) -> None:
    assistant = services.assistant_create(name="handbook")
    response = staff.post(
        "/admin/assistant_chat/file/add/",
        {
            "assistant": assistant.pk,
            "upload": SimpleUploadedFile("a.exe", b"MZ"),
            "metadata": "",
            "chunks-TOTAL_FORMS": "0",
            "chunks-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    assert "Invalid file type for upload" in response.content.decode()
    assert not File.objects.exists()


def test_admin_shows_processing_failure_reason(staff: Client) -> None:
    assistant = services.assistant_create(name="handbook")
    services.file_upload(assistant=assistant, name="broken.pdf", data=b"%PDF-1.4 junk")[2].result(timeout=30)
    listing = staff.get("/admin/assistant_chat/file/").content.decode()
    assert "ProcessingFailed" in listing
    assert "PDF" in listing


def test_admin_creates_an_api_key_shown_once(staff: Client) -> None:
    response = staff.post("/admin/assistant_chat/apikey/add/", {"name": "ci", "revoked": ""}, follow=True)
    page = response.content.decode()
    raw = re.search(r"(pcl_[A-Za-z0-9_-]{20,})", page).group(1)
    key = selectors.api_key_authenticate(raw_key=raw)
    assert key.name == "ci"
    assert raw not in staff.get(f"/admin/assistant_chat/apikey/{key.pk}/change/").content.decode()
    assert raw not in "".join(ApiKey.objects.values_list("key_hash", flat=True))


def test_non_staff_never_reach_the_admin(client: Client) -> None:
    User.objects.create_user("member", "", "pw-long-enough-123")
    client.login(username="member", password="pw-long-enough-123")
    response = client.get("/admin/assistant_chat/file/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_create_api_key_command_scoped_and_unscoped() -> None:
    services.assistant_create(name="alpha")
    out = io.StringIO()
    call_command("create_api_key", "--quiet", "--assistant", "alpha", stdout=out)
    key = selectors.api_key_authenticate(raw_key=out.getvalue().strip())
    assert selectors.api_key_scope(key) == {"alpha"}
    out = io.StringIO()
    call_command("create_api_key", stdout=out)
    assert "shown only this once" in out.getvalue()
    with pytest.raises(CommandError, match="No assistant named ghost"):
        call_command("create_api_key", "--assistant", "ghost")


def test_ingest_files_command_walks_folders(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("alpha text")
    (tmp_path / "sub" / "b.md").write_text("# Beta\n\nbeta text")
    (tmp_path / "skip.exe").write_bytes(b"MZ")
    out = io.StringIO()
    call_command(
        "ingest_files",
        "lib",
        str(tmp_path),
        "--create",
        "--metadata",
        '{"src": "cli"}',
        stdout=out,
        stderr=io.StringIO(),
    )
    assert "2 of 2 file(s) ingested" in out.getvalue()
    assert sorted(File.objects.values_list("name", "status")) == [("a.txt", "Available"), ("b.md", "Available")]
    assert [file.metadata for file in File.objects.all()] == [{"src": "cli"}, {"src": "cli"}]


def test_ingest_files_command_reports_failures(tmp_path: Path) -> None:
    services.assistant_create(name="lib")
    (tmp_path / "bad.pdf").write_bytes(b"not a pdf")
    with pytest.raises(CommandError, match="1 file"):
        call_command("ingest_files", "lib", str(tmp_path / "bad.pdf"), stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(CommandError, match="--metadata is not valid JSON"):
        call_command("ingest_files", "lib", str(tmp_path), "--metadata", "{", stdout=io.StringIO())
    with pytest.raises(CommandError, match="pass --create"):
        call_command("ingest_files", "nope", str(tmp_path), stdout=io.StringIO())


def test_setup_demo_is_idempotent_and_prints_secrets_once() -> None:
    first, second = io.StringIO(), io.StringIO()
    call_command("setup_demo", stdout=first)
    call_command("setup_demo", stdout=second)
    assert "password" in first.getvalue() and "API key" in first.getvalue()
    assert "password" not in second.getvalue() and "API key" not in second.getvalue()
    demo = Assistant.objects.get(name="demo")
    assert File.objects.filter(assistant=demo, status="Available").count() == len(demo_files())
    password = re.search(r"password '([^']+)'", first.getvalue()).group(1)
    assert password != "admin" and len(password) >= 12
    assert User.objects.get(username="admin").check_password(password)
