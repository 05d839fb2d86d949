"""What the SDKs read and the hosted service answers: a file's crc32c_hash, an upload whose processing fails
answering Processing (the client's poll finds the failure), and instructions updated to "" answering ""."""

from __future__ import annotations

import base64
import json
from typing import Any

import google_crc32c
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from assistant_chat import services
from assistant_chat.models import Assistant, File

pytestmark = pytest.mark.django_db(transaction=True)

NEW = {"HTTP_X_PINECONE_API_VERSION": "2026-07"}
OLD = {"HTTP_X_PINECONE_API_VERSION": "2025-10"}


@pytest.fixture
def books() -> Assistant:
    return services.assistant_create(name="books")


def upload(client: Client, key: str, name: str, data: bytes) -> Any:
    return client.post("/assistant/files/books", {"file": SimpleUploadedFile(name, data)}, HTTP_API_KEY=key, **OLD)


def test_crc32c_of_a_known_value() -> None:
    # RFC 3720's check value for CRC32C("123456789") is 0xE3069283; base64 of its big-endian bytes:
    assert services.crc32c_hash(b"123456789") == base64.b64encode(bytes.fromhex("e3069283")).decode() == "4waSgw=="


def test_an_upload_reports_the_crc32c_of_its_bytes(client: Client, key: str, books: Assistant) -> None:
    data = b"Sea otters use rocks as tools to crack open shellfish."
    expected = base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()
    uploaded = upload(client, key, "otters.txt", data).json()
    assert uploaded["crc32c_hash"] == expected
    described = client.get(f"/assistant/files/books/{uploaded['id']}", HTTP_API_KEY=key, **NEW).json()
    assert described["crc32c_hash"] == expected
    listed = client.get("/assistant/files/books", HTTP_API_KEY=key, **NEW).json()["files"]
    assert [f["crc32c_hash"] for f in listed] == [expected]
    assert File.objects.get().crc32c_hash == expected


def test_an_upsert_with_new_bytes_gets_their_crc32c(client: Client, key: str, books: Assistant) -> None:
    first, second = b"first version of the notes", b"second version of the notes"
    for data in (first, second):
        response = client.put(
            "/assistant/files/books/notes-1",
            data=_multipart("notes.txt", data),
            content_type="multipart/form-data; boundary=BoUnDaRy",
            HTTP_API_KEY=key,
            **NEW,
        )
        assert response.status_code == 202, response.content
    assert File.objects.get(file_id="notes-1").crc32c_hash == services.crc32c_hash(second)


def _multipart(name: str, data: bytes) -> bytes:
    return (
        b'--BoUnDaRy\r\nContent-Disposition: form-data; name="file"; filename="' + name.encode() + b'"\r\n'
        b"Content-Type: text/plain\r\n\r\n" + data + b"\r\n--BoUnDaRy--\r\n"
    )


def test_an_upload_whose_processing_fails_answers_processing_and_the_poll_finds_the_failure(
    client: Client, key: str, books: Assistant
) -> None:
    response = upload(client, key, "broken.pdf", b"%PDF-1.4\n%garbage that is not a pdf")
    assert response.status_code == 200
    body = response.json()
    # Processing already failed here (the server waits briefly for small files), yet the answer is the hosted
    # service's: Processing, no error yet. pinecone 8.x + plugin raises only when its poll sees the failure.
    assert File.objects.get().status == File.Status.PROCESSING_FAILED
    assert body["status"] == "Processing" and body["error_message"] is None
    described = client.get(f"/assistant/files/books/{body['id']}", HTTP_API_KEY=key, **OLD).json()
    assert described["status"] == "ProcessingFailed"
    assert "PDF" in described["error_message"]


def test_a_good_upload_still_answers_available_at_once(client: Client, key: str, books: Assistant) -> None:
    body = upload(client, key, "otters.txt", b"Sea otters use rocks as tools.").json()
    assert body["status"] == "Available"


def patch(client: Client, key: str, body: dict) -> Any:
    return client.patch(
        "/assistant/assistants/books", json.dumps(body), content_type="application/json", HTTP_API_KEY=key
    )


def test_instructions_set_to_empty_answer_empty_not_null(client: Client, key: str, books: Assistant) -> None:
    assert client.get("/assistant/assistants/books", HTTP_API_KEY=key).json()["instructions"] is None
    assert patch(client, key, {"instructions": "be brief"}).json()["instructions"] == "be brief"
    response = patch(client, key, {"instructions": ""})
    assert response.status_code == 200
    assert response.json()["instructions"] == ""
    assert client.get("/assistant/assistants/books", HTTP_API_KEY=key).json()["instructions"] == ""
    # null still means "leave unchanged" (pinecone 8.x + plugin sends both keys on every update)
    assert patch(client, key, {"instructions": None, "metadata": {"a": 1}}).json()["instructions"] == ""


def test_instructions_must_still_be_text(client: Client, key: str, books: Assistant) -> None:
    response = patch(client, key, {"instructions": 7})
    assert response.status_code == 400
    assert "instructions must be a string" in response.json()["error"]["message"]
