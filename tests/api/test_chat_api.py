"""The chat endpoints through Django's test client: validation before any stream, deny paths, stream shapes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.test import Client

from assistant_chat import services
from assistant_chat.models import Assistant

pytestmark = pytest.mark.django_db(transaction=True)


def post(client: Client, key: str, path: str, body: Any) -> Any:
    return client.post(path, json.dumps(body), content_type="application/json", HTTP_API_KEY=key)


def sse_events(response: Any) -> list[dict]:
    async def read() -> bytes:
        return b"".join([chunk async for chunk in response.streaming_content])

    raw = async_to_sync(read)().decode()
    return [json.loads(line[5:]) for line in raw.splitlines() if line.startswith("data:")]


QUESTION = [{"role": "user", "content": "How do otters open shellfish?"}]


@pytest.mark.parametrize("path", ["/assistant/chat/books", "/assistant/chat/books/chat/completions"])
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"messages": [{"role": "user", "content": ""}]}, "Message content cannot be empty"),
        ({"messages": [{"role": "user", "content": "   "}]}, "Message content cannot be empty"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "Role 'robot' is not valid"),
        ({"messages": [{"role": "", "content": "hi"}]}, "Role cannot be empty"),
        ({"messages": []}, "messages must be a non-empty list"),
        ({"messages": QUESTION, "model": "gpt-7"}, 'Unknown model "gpt-7"'),
        ({"messages": QUESTION, "model": "claude-3-5-sonnet"}, "set ANTHROPIC_API_KEY"),
        ({"messages": QUESTION, "model": "offline", "temperature": 2.5}, "temperature must be between 0 and 2"),
        ({"messages": QUESTION, "model": "offline", "temperature": "hot"}, "temperature must be a number"),
        ({"messages": QUESTION, "model": "offline", "filter": {"x": {"$near": 1}}}, "Invalid filter"),
        ({"messages": QUESTION, "model": "offline", "stream": "yes"}, "stream must be true or false"),
    ],
)
def test_validation_is_a_400_before_any_stream(
    client: Client, key: str, assistant: Assistant, path: str, body: dict, message: str
) -> None:
    response = post(client, key, path, {**body, "stream": body.get("stream", True)})
    assert response.status_code == 400, response
    assert response["Content-Type"] == "application/json"
    assert message in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"top_k": 0}, "top_k must be between 1 and 64"),
        ({"top_k": 65}, "top_k must be between 1 and 64"),
        ({"snippet_size": 100}, "snippet_size must be between 512 and 8192"),
    ],
)
def test_context_options_validated(client: Client, key: str, assistant: Assistant, options: dict, message: str) -> None:
    response = post(client, key, "/assistant/chat/books", {"messages": QUESTION, "context_options": options})
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]


def test_json_response_with_stream_is_refused(client: Client, key: str, assistant: Assistant) -> None:
    response = post(client, key, "/assistant/chat/books", {"messages": QUESTION, "json_response": True, "stream": True})
    assert response.status_code == 400
    assert "json_response cannot be used with stream" in response.json()["error"]["message"]


def test_json_response(client: Client, key: str, assistant: Assistant) -> None:
    body = post(client, key, "/assistant/chat/books", {"messages": QUESTION, "json_response": True}).json()
    assert "otters" in json.loads(body["message"]["content"])["answer"].lower()


def test_model_null_means_the_default(client: Client, key: str, assistant: Assistant) -> None:
    body = post(client, key, "/assistant/chat/books", {"messages": QUESTION, "model": None}).json()
    assert body["model"] == "offline-extractive-1"  # no OpenAI key configured here: the offline model
    assert body["finish_reason"] == "stop"
    assert body["citations"][0]["references"][0]["file"]["name"] == "otters.txt"
    assert body["citations"][0]["references"][0]["highlight"] is None


def test_standard_stream_shape(client: Client, key: str, assistant: Assistant) -> None:
    response = post(client, key, "/assistant/chat/books", {"messages": QUESTION, "stream": True})
    assert response["Content-Type"].startswith("text/event-stream")
    events = sse_events(response)
    assert [events[0]["type"], events[-1]["type"]] == ["message_start", "message_end"]
    assert {e["id"] for e in events} == {events[0]["id"]}
    text = "".join(e["delta"]["content"] for e in events if e["type"] == "content_chunk")
    citation = next(e["citation"] for e in events if e["type"] == "citation")
    assert "shellfish" in text
    assert 0 < citation["position"] <= len(text)
    assert events[-1]["usage"]["total_tokens"] > 0


def test_completions_stream_shape(client: Client, key: str, assistant: Assistant) -> None:
    response = post(client, key, "/assistant/chat/books/chat/completions", {"messages": QUESTION, "stream": True})
    events = sse_events(response)
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert events[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(e["choices"][0]["finish_reason"] is None for e in events[:-1])
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events)
    assert "[1]" in text  # a text file has no pages: the inline citation is just the number


def test_deny_paths(client: Client, key: str, assistant: Assistant) -> None:
    response = client.post("/assistant/chat/books", json.dumps({"messages": QUESTION}), content_type="application/json")
    assert response.status_code == 401
    response = post(client, "pcl_wrong", "/assistant/chat/books/chat/completions", {"messages": QUESTION})
    assert response.status_code == 401
    other = services.assistant_create(name="other")
    _scoped, scoped_key = services.api_key_create(name="scoped", assistants=[other])
    for path in ("/assistant/chat/books", "/assistant/chat/books/chat/completions"):
        response = post(client, scoped_key, path, {"messages": QUESTION})
        assert response.status_code == 403
        assert "books" in response.json()["error"]["message"]
    assert post(client, key, "/assistant/chat/nope", {"messages": QUESTION}).status_code == 404
    assert client.get("/assistant/chat/books", HTTP_API_KEY=key).status_code == 405
