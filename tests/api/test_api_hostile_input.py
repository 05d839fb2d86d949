"""Caller errors that used to reach a 500 (which the SDKs retry): each is a 4xx in the endpoint's envelope."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from assistant_chat import errors, services
from assistant_chat.models import Assistant, File

pytestmark = pytest.mark.django_db(transaction=True)

JSON_ENDPOINTS = [
    ("post", "/assistant/assistants"),
    ("patch", "/assistant/assistants/books"),
    ("post", "/assistant/chat/books/context"),
    ("post", "/assistant/chat/books"),
    ("post", "/assistant/chat/books/chat/completions"),
]


def envelope(response: Any, status: int, text: str) -> None:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["status"] == status and body["error"]["code"] == "INVALID_ARGUMENT"
    assert text in body["error"]["message"], body


def send(client: Client, key: str, method: str, path: str, raw: str, **extra: Any) -> Any:
    return getattr(client, method)(path, raw, content_type="application/json", HTTP_API_KEY=key, **extra)


@pytest.mark.parametrize(("method", "path"), JSON_ENDPOINTS)
def test_json_nested_thousands_deep_is_a_400_on_every_json_endpoint(client, key, assistant, method, path) -> None:
    deep = '{"messages": ' + "[" * 6000 + "]" * 6000 + "}"
    envelope(send(client, key, method, path, deep), 400, "nested too deeply")


@pytest.mark.parametrize(("method", "path"), JSON_ENDPOINTS)
def test_json_deeper_than_the_limit_is_a_400(client, key, assistant, method, path) -> None:
    deep = '{"metadata": ' + '{"a": ' * 100 + "1" + "}" * 100 + "}"
    envelope(send(client, key, method, path, deep), 400, "at most 64 levels")


def test_the_evaluation_endpoint_answers_deep_json_in_its_own_shape(client, key) -> None:
    response = send(client, key, "post", "/assistant/evaluation/metrics/alignment", "[" * 6000 + "]" * 6000)
    assert response.status_code == 422 and "application/json" in response["Content-Type"]
    assert "nested too deeply" in response.json()["message"]


def test_a_lone_surrogate_is_a_400_and_nothing_is_saved(client, key, assistant) -> None:
    raw = '{"instructions": "be brief \\ud800"}'
    envelope(send(client, key, "patch", "/assistant/assistants/books", raw), 400, "lone surrogate")
    assert Assistant.objects.get(name="books").instructions is None  # never given, and unchanged
    envelope(send(client, key, "post", "/assistant/assistants", '{"name": "x\\udfff"}'), 400, "lone surrogate")
    chat = '{"messages": [{"role": "user", "content": "hi \\ud800"}]}'
    envelope(send(client, key, "post", "/assistant/chat/books", chat), 400, "lone surrogate")
    query = '{"query": "\\ud83d otters"}'
    envelope(send(client, key, "post", "/assistant/chat/books/context", query), 400, "lone surrogate")


@pytest.mark.parametrize("method", ["post", "put"])
def test_multipart_without_a_boundary_is_a_400(client, key, assistant, method) -> None:
    path = "/assistant/files/books" if method == "post" else "/assistant/files/books/f-1"
    response = getattr(client, method)(path, b"--zz\r\n\r\n", content_type="multipart/form-data", HTTP_API_KEY=key)
    envelope(response, 400, "no boundary")


@pytest.mark.parametrize("method", ["post", "put"])
@pytest.mark.parametrize("body", [b"", b"garbage with no parts", b"--zz\r\nContent-Disposition: form-data\r\n"])
def test_empty_or_unparsable_multipart_is_a_400(client, key, assistant, method, body) -> None:
    path = "/assistant/files/books" if method == "post" else "/assistant/files/books/f-1"
    response = getattr(client, method)(path, body, content_type="multipart/form-data; boundary=zz", HTTP_API_KEY=key)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "INVALID_ARGUMENT"
    assert not File.objects.filter(assistant=assistant).exclude(name="otters.txt").exists()


def test_a_file_name_longer_than_the_column_never_reaches_the_database(client, key, assistant) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    name = "n" * 300 + ".txt"
    # Django's form parser shortens an uploaded file's name to 255 characters, keeping its extension...
    response = client.post("/assistant/files/books", {"file": SimpleUploadedFile(name, b"text")}, HTTP_API_KEY=key)
    assert response.status_code == 200
    assert len(response.json()["name"]) == 255 and response.json()["name"].endswith(".txt")
    # ...and the service refuses a longer one from any other caller, with a message instead of a database error.
    with pytest.raises(errors.InvalidArgument, match="304 characters long; at most 255"):
        services.file_upload(assistant=assistant, name=name, data=b"text")
