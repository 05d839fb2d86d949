"""The lean chat handler (api/asgi_chat.py) as Daphne calls it: only chat POSTs take it, and what they get back
(answers, errors, the site's security headers, the host check) is what Django's own path gives."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from asgiref.testing import ApplicationCommunicator
from django.core.asgi import get_asgi_application

from assistant_chat.api.asgi_chat import chat_fast_path
from assistant_chat.models import ApiKey, ModelEndpoint
from tests.providers.replay_server import LocalServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("assistant")]  # "books"

QUESTION = {"messages": [{"role": "user", "content": "How do otters open shellfish?"}], "model": "offline"}


def http_scope(method: str, path: str, headers: tuple = (), host: bytes = b"127.0.0.1") -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", host), (b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }


class _Upstream(LocalServer):
    def __init__(self, answer: Callable[[asyncio.StreamWriter], Awaitable[None]]) -> None:
        super().__init__()
        self.answer = answer

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
            )
            await reader.readexactly(length)
            await self.answer(writer)


@contextlib.asynccontextmanager
async def upstream_model(
    model_id: str, answer: Callable[[asyncio.StreamWriter], Awaitable[None]]
) -> AsyncIterator[None]:
    """A local OpenAI-compatible upstream registered as model `model_id`: it reads each request, then `answer`
    writes the response; a client that hangs up ends it quietly, and so does the end of the block."""
    async with _Upstream(answer) as server:
        await sync_to_async(ModelEndpoint.objects.create)(
            model_id=model_id, base_url=f"{server.origin}/v1", upstream_model="m"
        )
        yield


SSE_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def sse_chunk(payload: dict | str) -> bytes:
    data = f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n".encode()
    return b"%x\r\n%s\r\n" % (len(data), data)


async def rest_of_body(communicator: ApplicationCommunicator) -> bytes:
    """The response's body from here to its last message."""
    parts = []
    while True:
        message = await communicator.receive_output(10)
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(parts)


async def call(
    method: str, path: str, body: bytes = b"", headers: tuple = (), host: bytes = b"127.0.0.1", *, wait: bool = False
) -> tuple[int, dict, bytes]:
    communicator = ApplicationCommunicator(
        chat_fast_path(get_asgi_application()), http_scope(method, path, headers, host)
    )
    await communicator.send_input({"type": "http.request", "body": body})
    start = await communicator.receive_output(10)
    content = await rest_of_body(communicator)
    if wait:
        await communicator.wait(10)  # the handler's work after the response: closing it, request_finished
    return start["status"], {k.lower(): v for k, v in start["headers"]}, content


async def test_completion_with_the_site_headers(key: str) -> None:
    status, headers, body = await call(
        "POST", "/assistant/chat/books/chat/completions", json.dumps(QUESTION).encode(), ((b"api-key", key.encode()),)
    )
    assert status == 200
    assert "rocks" in json.loads(body)["choices"][0]["message"]["content"]
    assert headers[b"x-frame-options"] == b"DENY"
    assert headers[b"x-content-type-options"] == b"nosniff"


async def test_stream(key: str) -> None:
    status, _, body = await call(
        "POST",
        "/assistant/chat/books",
        json.dumps({**QUESTION, "stream": True}).encode(),
        ((b"authorization", f"Bearer {key}".encode()),),
    )
    events = [json.loads(line[5:]) for line in body.decode().splitlines() if line.startswith("data:")]
    assert status == 200
    assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_end"


async def test_errors_keep_the_envelope(key: str) -> None:
    status, _, body = await call("POST", "/assistant/chat/books", json.dumps(QUESTION).encode())
    assert (status, json.loads(body)["error"]["code"]) == (401, "UNAUTHENTICATED")
    status, _, body = await call(
        "POST", "/assistant/chat/nope", json.dumps(QUESTION).encode(), ((b"api-key", key.encode()),)
    )
    assert (status, json.loads(body)["status"]) == (404, 404)
    status, _, body = await call("POST", "/assistant/chat/books", b"{", ((b"api-key", key.encode()),))
    assert status == 400 and "not valid JSON" in json.loads(body)["error"]["message"]


async def test_other_methods_and_hosts_get_djangos_answer(key: str) -> None:
    status, headers, body = await call("GET", "/assistant/chat/books", headers=((b"api-key", key.encode()),))
    assert status == 405 and headers[b"allow"] == b"POST"
    status, _, _ = await call("POST", "/assistant/chat/books", json.dumps(QUESTION).encode(), host=b"evil.example")
    assert status == 400


async def test_a_revoked_key_is_refused_at_once(key: str) -> None:
    await call("POST", "/assistant/chat/books", json.dumps(QUESTION).encode(), ((b"api-key", key.encode()),))
    await sync_to_async(ApiKey.objects.update)(revoked=True)
    status, _, _ = await call(
        "POST", "/assistant/chat/books", json.dumps(QUESTION).encode(), ((b"api-key", key.encode()),)
    )
    assert status == 401


async def test_request_signals_reach_the_sites_own_receivers(key: str) -> None:
    """Django's own `request_started` receivers run inline; any other receiver makes the handler send the signal
    as Django does, so it is still called, once per request, and so is `request_finished`."""
    from django.core import signals

    started, finished = [], []

    def on_started(sender: object, **kwargs: object) -> None:
        started.append(kwargs.get("scope"))

    def on_finished(sender: object, **kwargs: object) -> None:
        finished.append(sender)

    body = json.dumps(QUESTION).encode()
    status, _headers, _body = await call("POST", "/assistant/chat/books", body, ((b"api-key", key.encode()),))
    assert status == 200
    signals.request_started.connect(on_started)
    signals.request_finished.connect(on_finished)
    try:
        status, _headers, _body = await call(
            "POST", "/assistant/chat/books", body, ((b"api-key", key.encode()),), wait=True
        )
    finally:
        signals.request_started.disconnect(on_started)
        signals.request_finished.disconnect(on_finished)
    assert status == 200
    assert len(started) == 1 and started[0]["path"] == "/assistant/chat/books"
    assert len(finished) == 1


async def test_a_client_that_leaves_mid_stream_closes_the_upstream_connection(key: str) -> None:
    """The turn's task is cancelled when the client goes, and its upstream connection (pooled between turns) is
    closed, which is what tells the upstream to stop generating."""
    upstream_gone = asyncio.Event()

    async def answer(writer: asyncio.StreamWriter) -> None:
        writer.write(SSE_HEAD)
        try:
            for index in range(200):
                writer.write(sse_chunk({"choices": [{"index": 0, "delta": {"content": f"t{index} "}}]}))
                await writer.drain()
                await asyncio.sleep(0.02)
        except ConnectionError:
            upstream_gone.set()

    path = "/assistant/chat/books/chat/completions"
    body = json.dumps({**QUESTION, "model": "slow", "stream": True}).encode()
    async with upstream_model("slow", answer):
        scope = http_scope("POST", path, ((b"api-key", key.encode()),))
        communicator = ApplicationCommunicator(chat_fast_path(get_asgi_application()), scope)
        await communicator.send_input({"type": "http.request", "body": body})
        assert (await communicator.receive_output(10))["status"] == 200
        received = b""
        while b"t1 " not in received:
            received += (await communicator.receive_output(10)).get("body", b"")
        await communicator.send_input({"type": "http.disconnect"})
        async with asyncio.timeout(5):
            await upstream_gone.wait()
        await communicator.wait(5)


async def test_answers_report_their_retrieval_time(key: str) -> None:
    for path, stream in (("/assistant/chat/books", True), ("/assistant/chat/books/chat/completions", False)):
        status, headers, _ = await call(
            "POST", path, json.dumps({**QUESTION, "stream": stream}).encode(), ((b"api-key", key.encode()),)
        )
        assert status == 200
        timing = headers[b"server-timing"].decode()
        assert timing.startswith("retrieval;dur=") and 'desc="context retrieval"' in timing
        assert float(timing.split("dur=")[1].split(";")[0]) > 0


async def test_a_stream_starts_once_the_upstream_has_accepted_the_request(key: str) -> None:
    """Nothing is sent until the upstream answers with a success status (so a refusal can still be an HTTP
    error); then the stream starts at once, while the upstream still holds its first token."""
    request_received, accept, release = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def answer(writer: asyncio.StreamWriter) -> None:
        request_received.set()
        await accept.wait()
        writer.write(SSE_HEAD)
        await writer.drain()
        await release.wait()
        writer.write(sse_chunk({"choices": [{"index": 0, "delta": {"content": "late"}, "finish_reason": "stop"}]}))
        writer.write(sse_chunk("[DONE]") + b"0\r\n\r\n")
        await writer.drain()

    path = "/assistant/chat/books/chat/completions"
    body = json.dumps({**QUESTION, "model": "held", "stream": True}).encode()
    async with upstream_model("held", answer):
        scope = http_scope("POST", path, ((b"api-key", key.encode()),))
        communicator = ApplicationCommunicator(chat_fast_path(get_asgi_application()), scope)
        await communicator.send_input({"type": "http.request", "body": body})
        await asyncio.wait_for(request_received.wait(), 10)
        await asyncio.sleep(0.1)
        assert communicator.output_queue.empty()  # the upstream has not accepted yet: no status is committed
        accept.set()
        assert (await communicator.receive_output(10))["status"] == 200
        first = await communicator.receive_output(10)
        assert not release.is_set()
        assert json.loads(first["body"][5:])["choices"][0]["delta"] == {"role": "assistant", "content": ""}
        release.set()
        assert b"late" in await rest_of_body(communicator)
        await communicator.wait(5)


@pytest.mark.parametrize("path", ["/assistant/chat/books", "/assistant/chat/books/chat/completions"])
@pytest.mark.parametrize(
    ("upstream_status", "extra_headers", "status", "code"),
    [
        (429, b"retry-after: 600\r\n", 429, "TOO_MANY_REQUESTS"),  # longer than the server will wait to retry
        (401, b"", 400, "FAILED_PRECONDITION"),
        (400, b"", 400, "INVALID_ARGUMENT"),
    ],
)
async def test_an_upstream_refusal_before_any_answer_is_an_http_error_for_a_stream_too(
    key: str, path: str, upstream_status: int, extra_headers: bytes, status: int, code: str
) -> None:
    async def answer(writer: asyncio.StreamWriter) -> None:
        error = json.dumps({"error": {"message": "upstream says no", "type": "x"}}).encode()
        writer.write(
            b"HTTP/1.1 %d No\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n%s"
            % (upstream_status, len(error), extra_headers, error)
        )
        await writer.drain()

    body = json.dumps({**QUESTION, "model": "refusing", "stream": True}).encode()
    async with upstream_model("refusing", answer):
        got, headers, content = await call("POST", path, body, ((b"api-key", key.encode()),))
    assert got == status
    assert headers[b"content-type"].startswith(b"application/json")
    error = json.loads(content)["error"]
    assert error["code"] == code and "upstream says no" in error["message"]
    if status == 429:
        assert headers[b"retry-after"] == b"600"


@pytest.mark.parametrize("path", ["/assistant/chat/books", "/assistant/chat/books/chat/completions"])
async def test_a_failure_after_the_stream_started_is_said_in_band_with_its_code(
    key: str, path: str, settings: Any
) -> None:
    settings.PROVIDER_READ_TIMEOUT = 0.3

    async def answer(writer: asyncio.StreamWriter) -> None:
        writer.write(SSE_HEAD + sse_chunk({"choices": [{"index": 0, "delta": {"content": "Otters "}}]}))
        await writer.drain()
        await asyncio.sleep(5)  # then silence, past the read timeout

    body = json.dumps({**QUESTION, "model": "stalling", "stream": True}).encode()
    async with upstream_model("stalling", answer):
        status, _headers, content = await call("POST", path, body, ((b"api-key", key.encode()),))
    assert status == 200
    events = [json.loads(line[5:]) for line in content.decode().splitlines() if line.startswith("data:")]
    assert "Otters" in json.dumps(events[:-1])
    assert events[-1]["error"]["code"] == "DEADLINE_EXCEEDED" and "no data for 0.3 s" in events[-1]["error"]["message"]
