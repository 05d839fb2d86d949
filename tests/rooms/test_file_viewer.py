"""The file viewer shows what ingestion stored, a window at a time, and never parses the upload again; hostile
files end ProcessingFailed with a message naming the limit they passed."""

from __future__ import annotations

import pytest
from django.test import Client

from assistant_chat import services
from assistant_chat.models import File, FileBlob, FilePage
from bench.hostile_files import docx_bomb, many_pages_pdf
from tests.rooms.helpers import make_assistant, make_room, make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def member():
    alice = make_user("alice")
    make_room("lab", make_assistant(), [alice])
    client = Client()
    client.force_login(alice)
    return client


def upload(name: str, data: bytes) -> File:
    assistant = File.objects.first().assistant  # the room's (make_assistant)
    file, _operation, future = services.file_upload(assistant=assistant, name=name, data=data)
    future.result(timeout=60)
    file.refresh_from_db()
    return file


def test_the_viewer_reads_stored_pages_not_the_upload(member):
    file = upload("long.pdf", many_pages_pdf(45, "Otters hold hands"))
    assert file.status == "Available" and FilePage.objects.filter(file=file).count() == 45
    FileBlob.objects.filter(file=file).delete()  # nothing to parse: the view must come from the stored pages
    first = member.get(f"/rooms/lab/files/{file.file_id}/").content.decode()
    assert first.count('class="page-text"') == 20 and 'id="page-1"' in first and 'id="page-21"' not in first
    assert "Part 1 of 3" in first and "?part=1" in first and "45 pages" in first
    cited = member.get(f"/rooms/lab/files/{file.file_id}/?page=30").content.decode()
    assert 'id="page-30"' in cited and 'aria-current="page"' in cited and "Part 2 of 3" in cited
    last = member.get(f"/rooms/lab/files/{file.file_id}/?part=2").content.decode()
    assert last.count('class="page-text"') == 5 and "Later" not in last and "?part=1" in last
    assert member.get(f"/rooms/lab/files/{file.file_id}/?part=99").status_code == 200  # clamped to the last


def test_a_long_text_file_is_stored_in_segments_and_paged(member):
    paragraph = "Sea otters float on their backs and crack shellfish on their chests. " * 20
    file = upload("long.txt", ("\n\n".join([paragraph] * 400)).encode())
    segments = list(FilePage.objects.filter(file=file).order_by("ordinal"))
    assert len(segments) > 40 and all(len(s.text) <= 10_000 for s in segments)
    page = member.get(f"/rooms/lab/files/{file.file_id}/").content.decode()
    assert page.count('class="page-text"') == 20 and f"Part 1 of {-(-len(segments) // 20)}" in page
    assert len(page) < 300_000  # one window, not the whole file


def test_a_file_ingested_before_pages_were_stored_shows_its_chunks(member):
    file = File.objects.get(name="otters.txt")
    FilePage.objects.filter(file=file).delete()
    page = member.get(f"/rooms/lab/files/{file.file_id}/").content.decode()
    assert "Sea otters use rocks" in page and "process the file again" in page


def test_hostile_files_end_processing_failed_naming_the_limit(member, settings):
    settings.PARSE_MAX_PAGES = 100
    settings.PARSE_MAX_UNPACKED_BYTES = 20 * 1024 * 1024
    many = upload("many.pdf", many_pages_pdf(150))
    bomb = upload("bomb.docx", docx_bomb(64 * 1024 * 1024))
    assert (many.status, bomb.status) == ("ProcessingFailed", "ProcessingFailed")
    assert "150 pages" in many.error_message and "PARSE_MAX_PAGES" in many.error_message
    assert "PARSE_MAX_UNPACKED_BYTES" in bomb.error_message
    assert not FilePage.objects.filter(file__in=[many, bomb]).exists()
    assert member.get(f"/rooms/lab/files/{bomb.file_id}/").status_code == 404  # failed files are not viewable
