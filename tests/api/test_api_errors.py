"""Bad input and deny paths of the HTTP API, through Django's test client: every one a 4xx in Pinecone's envelope."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from assistant_chat import services
from assistant_chat.models import Assistant, File

pytestmark = pytest.mark.django_db(transaction=True)

NEW = {"HTTP_X_PINECONE_API_VERSION": "2026-07"}
OLD = {"HTTP_X_PINECONE_API_VERSION": "2025-10"}


@pytest.fixture
def api(client: Client, key: str) -> Callable[..., Any]:
    def call(method: str, path: str, *, body: Any = None, headers: dict | None = None, **extra: Any) -> Any:
        kwargs: dict[str, Any] = {"HTTP_API_KEY": key, **(headers or {}), **extra}
        if body is not None:
            kwargs["data"] = json.dumps(body)
            kwargs["content_type"] = "application/json"
        return getattr(client, method)(path, **kwargs)

    return call


@pytest.fixture
def assistant() -> Assistant:
    return services.assistant_create(name="books")


def upload(client: Client, key: str, name: str, data: bytes, *, metadata: Any = None, headers: dict | None = None):
    from django.core.files.uploadedfile import SimpleUploadedFile

    form: dict[str, Any] = {"file": SimpleUploadedFile(name, data)}
    if metadata is not None:
        form["metadata"] = metadata if isinstance(metadata, str) else json.dumps(metadata)
    response = client.post("/assistant/files/books", form, HTTP_API_KEY=key, **(headers or OLD))
    return response


def assert_error(response: Any, status: int, code: str, text: str) -> None:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["status"] == status
    assert body["error"]["code"] == code
    assert text in body["error"]["message"], body


# --- authentication and scope -----------------------------------------------------------------------------------


def test_missing_key_is_401(client: Client, assistant: Assistant) -> None:
    assert_error(client.get("/assistant/assistants"), 401, "UNAUTHENTICATED", "Invalid API key.")


def test_invalid_key_is_401(client: Client, assistant: Assistant) -> None:
    response = client.get("/assistant/files/books", HTTP_API_KEY="pcl_not-a-key")
    assert_error(response, 401, "UNAUTHENTICATED", "Invalid API key.")


def test_bearer_token_is_accepted(client: Client, key: str, assistant: Assistant) -> None:
    response = client.get("/assistant/assistants/books", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 200
    assert response.json()["name"] == "books"


def test_revoked_key_is_401(client: Client, assistant: Assistant) -> None:
    key, raw = services.api_key_create(name="old")
    key.revoked = True
    key.save()
    assert_error(client.get("/assistant/assistants", HTTP_API_KEY=raw), 401, "UNAUTHENTICATED", "Invalid API key.")


def test_scoped_key_cannot_read_another_assistants_files(client: Client, key: str, assistant: Assistant) -> None:
    other = services.assistant_create(name="other")
    upload(client, key, "secret.txt", b"the launch code is swordfish", metadata={"k": "v"})
    _scoped, scoped_key = services.api_key_create(name="scoped", assistants=[other])
    for path in (
        "/assistant/files/books",
        "/assistant/assistants/books",
        "/assistant/operations/books",
        f"/assistant/files/books/{File.objects.get().file_id}",
    ):
        assert_error(client.get(path, HTTP_API_KEY=scoped_key), 403, "PERMISSION_DENIED", '"books"')
    response = client.post(
        "/assistant/chat/books/context",
        json.dumps({"query": "launch code"}),
        content_type="application/json",
        HTTP_API_KEY=scoped_key,
    )
    assert_error(response, 403, "PERMISSION_DENIED", '"books"')
    # Same answer whether or not the assistant exists: a scoped key learns nothing about others.
    assert_error(
        client.get("/assistant/assistants/ghost", HTTP_API_KEY=scoped_key), 403, "PERMISSION_DENIED", '"ghost"'
    )
    listed = client.get("/assistant/assistants", HTTP_API_KEY=scoped_key).json()["assistants"]
    assert [a["name"] for a in listed] == ["other"]


def test_scoped_key_cannot_create_or_delete_assistants(client: Client, assistant: Assistant) -> None:
    _scoped, scoped_key = services.api_key_create(name="scoped", assistants=[assistant])
    response = client.post(
        "/assistant/assistants", json.dumps({"name": "new"}), content_type="application/json", HTTP_API_KEY=scoped_key
    )
    assert_error(response, 403, "PERMISSION_DENIED", "may not create")
    assert_error(client.delete("/assistant/assistants/books", HTTP_API_KEY=scoped_key), 403, "PERMISSION_DENIED", "")
    assert Assistant.objects.filter(name="books", status="Ready").exists()


# --- assistants -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Bad_Name", "-dash", "dash-", "x" * 64, "", "spaces here"])
def test_bad_assistant_name(api: Callable[..., Any], name: str) -> None:
    response = api("post", "/assistant/assistants", body={"name": name})
    assert_error(response, 400, "INVALID_ARGUMENT", "name")
    assert not Assistant.objects.exists()


def test_duplicate_assistant_is_409(api: Callable[..., Any], assistant: Assistant) -> None:
    assert_error(api("post", "/assistant/assistants", body={"name": "books"}), 409, "ALREADY_EXISTS", "already exists")


def test_bad_region_and_malformed_body(api: Callable[..., Any], client: Client, key: str) -> None:
    response = api("post", "/assistant/assistants", body={"name": "ok", "region": "mars"})
    assert_error(response, 400, "INVALID_ARGUMENT", "Invalid region: Valid options are us, eu")
    response = client.post("/assistant/assistants", "{not json", content_type="application/json", HTTP_API_KEY=key)
    assert_error(response, 400, "INVALID_ARGUMENT", "not valid JSON")


def test_unknown_assistant_is_404(api: Callable[..., Any]) -> None:
    assert_error(api("get", "/assistant/assistants/nope"), 404, "NOT_FOUND", 'Assistant "nope" not found.')
    assert_error(api("get", "/assistant/files/nope"), 404, "NOT_FOUND", 'Assistant "nope" not found.')


def test_empty_update_is_refused(api: Callable[..., Any], assistant: Assistant) -> None:
    assert_error(api("patch", "/assistant/assistants/books", body={}), 400, "INVALID_ARGUMENT", "No updates provided")


def test_old_clients_see_the_terminating_tombstone_once(api: Callable[..., Any], assistant: Assistant) -> None:
    assert api("delete", "/assistant/assistants/books", headers=OLD).status_code == 200
    first = api("get", "/assistant/assistants/books", headers=OLD)
    assert first.status_code == 200 and first.json()["status"] == "Terminating"
    assert api("get", "/assistant/assistants/books", headers=OLD).status_code == 404
    assert not Assistant.objects.exists()


def test_new_clients_get_404_right_after_delete(api: Callable[..., Any], assistant: Assistant) -> None:
    assert api("delete", "/assistant/assistants/books", headers=NEW).status_code == 200
    assert api("get", "/assistant/assistants/books", headers=NEW).status_code == 404


# --- files ------------------------------------------------------------------------------------------------------


def test_unsupported_file_type(client: Client, key: str, assistant: Assistant) -> None:
    response = upload(client, key, "virus.exe", b"MZ...")
    assert_error(response, 400, "INVALID_ARGUMENT", "Invalid file type for upload")
    assert not File.objects.exists()


def test_oversize_file(client: Client, key: str, assistant: Assistant, settings: Any) -> None:
    settings.FILE_MAX_BYTES = 1000
    response = upload(client, key, "big.txt", b"x" * 1001)
    assert_error(response, 413, "INVALID_ARGUMENT", "largest file accepted")
    assert not File.objects.exists()


def test_empty_file(client: Client, key: str, assistant: Assistant) -> None:
    assert_error(upload(client, key, "empty.txt", b""), 400, "INVALID_ARGUMENT", "empty")


@pytest.mark.parametrize(
    ("metadata", "text"),
    [
        ("{not json", "not valid JSON"),
        ({"nested": {"a": 1}}, "nested"),
        ({"$bad": 1}, "$bad"),
        ({"gone": None}, "gone"),
        ('["a"]', "object"),
        ({"big": "x" * 17000}, "16"),
    ],
)
def test_malformed_metadata(client: Client, key: str, assistant: Assistant, metadata: Any, text: str) -> None:
    response = upload(client, key, "a.txt", b"hello", metadata=metadata)
    assert_error(response, 400, "INVALID_ARGUMENT", "Invalid metadata")
    assert text in response.json()["error"]["message"]
    assert not File.objects.exists()


def test_metadata_from_query_string_as_old_clients_send_it(client: Client, key: str, assistant: Assistant) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = client.post(
        "/assistant/files/books?metadata=%7B%22genre%22%3A%20%22fact%22%7D&multimodal=false",
        {"file": SimpleUploadedFile("q.txt", b"query string metadata")},
        HTTP_API_KEY=key,
        **OLD,
    )
    assert response.status_code == 200, response.content
    assert response.json()["metadata"] == {"genre": "fact"}


def test_corrupt_pdf_fails_processing_with_reason(client: Client, key: str, assistant: Assistant) -> None:
    response = upload(client, key, "broken.pdf", b"%PDF-1.4\n%garbage that is not a pdf")
    assert response.status_code == 200
    file = File.objects.get()
    assert file.status == File.Status.PROCESSING_FAILED
    assert "PDF" in file.error_message
    described = client.get(f"/assistant/files/books/{file.file_id}", HTTP_API_KEY=key, **OLD).json()
    assert described["status"] == "ProcessingFailed"
    assert "PDF" in described["error_message"]


def test_corrupt_pdf_operation_fails_for_new_clients(client: Client, key: str, assistant: Assistant) -> None:
    response = upload(client, key, "broken.pdf", b"not a pdf at all", headers=NEW)
    assert response.status_code == 202
    operation = client.get(f"/assistant/operations/books/{response.json()['id']}", HTTP_API_KEY=key, **NEW).json()
    assert operation["status"] == "Failed"
    assert "PDF" in operation["error_message"]


def test_unknown_file_is_404(api: Callable[..., Any], assistant: Assistant) -> None:
    response = api("get", "/assistant/files/books/does-not-exist")
    assert_error(response, 404, "NOT_FOUND", "File with id does-not-exist  not found in provided assistant")
    assert_error(api("delete", "/assistant/files/books/does-not-exist"), 404, "NOT_FOUND", "not found")


def test_malformed_filter_on_list_and_context(api: Callable[..., Any], assistant: Assistant) -> None:
    response = api("get", '/assistant/files/books?filter={"year":{"$regex":"x"}}')
    assert_error(response, 400, "INVALID_ARGUMENT", "$regex")
    response = api("get", "/assistant/files/books?filter={oops")
    assert_error(response, 400, "INVALID_ARGUMENT", "Invalid filter")
    response = api("post", "/assistant/chat/books/context", body={"query": "x", "filter": {"year": {"$gt": "2020"}}})
    assert_error(response, 400, "INVALID_ARGUMENT", "$gt")


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"query": "x", "top_k": 0}, "top_k must be between 1 and 64"),
        ({"query": "x", "top_k": 65}, "top_k must be between 1 and 64"),
        ({"query": "x", "snippet_size": 511}, "snippet_size must be between 512 and 8192"),
        ({"query": "x", "snippet_size": 9000}, "snippet_size must be between 512 and 8192"),
        ({"query": "x", "top_k": "many"}, "top_k must be an integer"),
        ({}, "exactly one of query or messages"),
        ({"query": "x", "messages": [{"content": "y"}]}, "exactly one of query or messages"),
        ({"query": "   "}, "query must be a non-empty string"),
        ({"messages": [{"role": "user", "content": ""}]}, "Message content cannot be empty"),
        ({"messages": [{"role": "User", "content": "x"}]}, "Role 'User' is not valid"),
    ],
)
def test_context_validation(api: Callable[..., Any], assistant: Assistant, body: dict, text: str) -> None:
    assert_error(api("post", "/assistant/chat/books/context", body=body), 400, "INVALID_ARGUMENT", text)


@pytest.mark.parametrize(
    ("method", "path"),
    [("post", "/assistant/evaluation/metrics/other"), ("get", "/assistant/assistant"), ("get", "/assistant/")],
)
def test_a_path_the_api_does_not_serve_is_404_in_the_envelope(api: Callable[..., Any], method: str, path: str) -> None:
    assert_error(api(method, path), 404, "NOT_FOUND", "is not part of this API")


def test_an_oversized_json_body_is_413_not_500(api: Callable[..., Any], assistant: Assistant, settings: Any) -> None:
    # The SDKs retry a 5xx; a body too large to read is the caller's to fix.
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
    question = {"messages": [{"role": "user", "content": "x" * (2 * 1024 * 1024)}]}
    for path in ("/assistant/chat/books", "/assistant/chat/books/chat/completions", "/assistant/chat/books/context"):
        assert_error(api("post", path, body=question), 413, "INVALID_ARGUMENT", "larger than 1 MB")


def test_wrong_method_is_405_in_the_envelope(api: Callable[..., Any], assistant: Assistant) -> None:
    response = api("put", "/assistant/assistants")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "INVALID_ARGUMENT"


def test_bad_pagination_token(api: Callable[..., Any], assistant: Assistant) -> None:
    response = api("get", "/assistant/files/books?pagination_token=%%%")
    assert_error(response, 400, "INVALID_ARGUMENT", "pagination_token")


# --- shapes per API version -------------------------------------------------------------------------------------


def test_upload_shapes_per_version(client: Client, key: str, assistant: Assistant) -> None:
    old = upload(client, key, "a.txt", b"alpha", headers=OLD)
    assert old.status_code == 200
    assert {"id", "name", "status", "percent_done", "error_message", "multimodal", "size", "signed_url"} <= set(
        old.json()
    )
    new = upload(client, key, "b.txt", b"beta", headers=NEW)
    assert new.status_code == 202
    assert new.json()["operation_type"] == "upload_file"
    assert new["Location"].startswith("/operations/books/op-")


def test_upsert_replaces_content_and_metadata(client: Client, key: str, assistant: Assistant) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

    def put(data: bytes, metadata: dict) -> Any:
        body = encode_multipart(
            BOUNDARY, {"file": SimpleUploadedFile("doc.txt", data), "metadata": json.dumps(metadata)}
        )
        return client.generic(
            "PUT",
            "/assistant/files/books/my-doc",
            body,
            content_type=MULTIPART_CONTENT,
            HTTP_API_KEY=key,
            **NEW,
        )

    first = put(b"version one talks about otters", {"v": 1})
    assert first.status_code == 202, first.content
    assert first.json()["operation_type"] == "upsert_file"
    second = put(b"version two talks about beavers", {"v": 2})
    assert second.status_code == 202
    file = File.objects.get()
    assert (file.file_id, file.metadata, file.status) == ("my-doc", {"v": 2}, "Available")
    assert "beavers" in " ".join(file.chunks.values_list("text", flat=True))
    assert "otters" not in " ".join(file.chunks.values_list("text", flat=True))


def test_file_list_pagination(client: Client, key: str, assistant: Assistant) -> None:
    for index in range(5):
        upload(client, key, f"f{index}.txt", f"file number {index}".encode())
    names: list[str] = []
    token = None
    pages = 0
    while True:
        query = "limit=2" + (f"&pagination_token={token}" if token else "")
        body = client.get(f"/assistant/files/books?{query}", HTTP_API_KEY=key, **NEW).json()
        names += [f["name"] for f in body["files"]]
        pages += 1
        if "pagination" not in body:
            break
        token = body["pagination"]["next"]
    assert names == [f"f{index}.txt" for index in range(5)]
    assert pages == 3


def test_old_clients_see_the_deleting_tombstone_once(client: Client, key: str, assistant: Assistant) -> None:
    upload(client, key, "a.txt", b"alpha")
    file_id = File.objects.get().file_id
    assert client.delete(f"/assistant/files/books/{file_id}", HTTP_API_KEY=key, **OLD).status_code == 200
    first = client.get(f"/assistant/files/books/{file_id}", HTTP_API_KEY=key, **OLD)
    assert first.json()["status"] == "Deleting"
    assert client.get(f"/assistant/files/books/{file_id}", HTTP_API_KEY=key, **OLD).status_code == 404
    assert client.get("/assistant/files/books", HTTP_API_KEY=key, **OLD).json() == {"files": []}


def test_signed_url_rejects_tampering(client: Client, key: str, assistant: Assistant) -> None:
    upload(client, key, "a.txt", b"alpha")
    file_id = File.objects.get().file_id
    url = client.get(f"/assistant/files/books/{file_id}?include_url=true", HTTP_API_KEY=key).json()["signed_url"]
    path = url.split("testserver", 1)[1]
    assert client.get(path).content == b"alpha"
    assert client.get(path[:-3] + "abc").status_code == 403
