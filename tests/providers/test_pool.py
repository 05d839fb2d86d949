"""The shared upstream client: connections are reused between turns, a turn closed early still drops its
connection, an idle connection the server closed is retried at once, no cookie travels between callers, and the
environment's proxy settings are followed."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from assistant_chat.providers import http
from assistant_chat.providers.base import Delta, Finish, Message, ProviderRequest
from assistant_chat.providers.openai import OpenAIProvider
from tests.providers.replay_server import LocalServer

REQUEST = ProviderRequest(model="m", messages=(Message("user", "hi"),))


def _chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def _event(text: str | None, finish: str | None = None) -> bytes:
    delta = {"content": text} if text is not None else {}
    data = {"model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(data).encode() + b"\n\n"


@dataclass
class KeepAliveServer(LocalServer):
    """An upstream that keeps connections open between requests (as real ones do), counting connections."""

    tokens: int = 3
    delay: float = 0.0  # seconds between tokens
    hang_after_done: float = 0.0  # keep the body open this long after [DONE]
    close_idle: bool = False  # close every connection right after its first answer, as an idle timeout would
    set_cookie: bool = False
    connections: int = 0
    cookies_seen: list[str | None] = field(default_factory=list)
    request_lines: list[str] = field(default_factory=list)
    early_disconnects: int = 0
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        super().__init__()

    @property
    def url(self) -> str:
        return f"{self.origin}/v1"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower().split("\r\n")
                headers = dict(line.split(": ", 1) for line in head[1:] if ": " in line)
                await reader.readexactly(int(headers.get("content-length", "0")))
                self.cookies_seen.append(headers.get("cookie"))
                self.request_lines.append(head[0])
                extra = b"set-cookie: session=secret; Path=/\r\n" if self.set_cookie else b""
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"
                    + extra
                    + b"\r\n"
                )
                for index in range(self.tokens):
                    writer.write(_chunk(_event(f"t{index} ")))
                    await writer.drain()
                    if self.delay:
                        await asyncio.sleep(self.delay)
                writer.write(_chunk(_event(None, "stop") + b"data: [DONE]\n\n"))
                await writer.drain()
                if self.hang_after_done:
                    await asyncio.sleep(self.hang_after_done)
                writer.write(b"0\r\n\r\n")
                await writer.drain()
                if self.close_idle:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            self.early_disconnects += 1
            self.disconnected.set()
        except asyncio.CancelledError:
            pass  # the test is over (ending cancelled would make asyncio log the handler as failed)


@pytest.fixture
async def upstream() -> AsyncIterator[KeepAliveServer]:
    async with KeepAliveServer() as server:
        yield server


async def answer(provider: OpenAIProvider) -> str:
    text = ""
    async for item in provider.stream(REQUEST):
        if isinstance(item, Delta):
            text += item.text
        else:
            assert isinstance(item, Finish) and item.reason == "stop"
    return text


async def test_turns_reuse_one_connection(upstream: KeepAliveServer) -> None:
    provider = OpenAIProvider("local", upstream.url)
    for _ in range(3):
        assert await answer(provider) == "t0 t1 t2 "
    assert upstream.connections == 1
    # Another provider instance (the registry makes one per turn) shares the loop's pool, and so the connection.
    assert await answer(OpenAIProvider("other", upstream.url)) == "t0 t1 t2 "
    assert upstream.connections == 1


async def test_closing_a_turn_early_drops_its_connection_and_the_next_turn_gets_a_new_one(
    upstream: KeepAliveServer,
) -> None:
    upstream.tokens, upstream.delay = 20, 0.05
    provider = OpenAIProvider("local", upstream.url)
    stream = provider.stream(REQUEST)
    assert await anext(stream) == Delta("t0 ")
    await stream.aclose()
    async with asyncio.timeout(3):
        await upstream.disconnected.wait()
    upstream.delay = 0.0
    assert (await answer(provider)).startswith("t0 t1")
    assert upstream.connections == 2


async def test_cancelling_the_consuming_task_drops_the_connection(upstream: KeepAliveServer) -> None:
    upstream.tokens, upstream.delay = 20, 0.05
    first = asyncio.Event()

    async def consume() -> None:
        async for item in OpenAIProvider("local", upstream.url).stream(REQUEST):
            if isinstance(item, Delta):
                first.set()

    task = asyncio.create_task(consume())
    await first.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with asyncio.timeout(3):
        await upstream.disconnected.wait()


async def test_a_connection_the_server_closed_while_idle_is_retried_at_once(upstream: KeepAliveServer) -> None:
    upstream.close_idle = True
    provider = OpenAIProvider("local", upstream.url, max_retries=0)
    assert await answer(provider) == "t0 t1 t2 "
    await asyncio.sleep(0.05)  # the server has closed the pooled connection by now
    started = time.monotonic()
    assert await answer(provider) == "t0 t1 t2 "
    assert time.monotonic() - started < 0.4  # no backoff: the retry does not count as an attempt
    assert upstream.connections == 2


async def test_a_body_left_open_after_done_ends_the_answer_anyway(upstream: KeepAliveServer) -> None:
    upstream.hang_after_done = 5.0
    started = time.monotonic()
    assert await answer(OpenAIProvider("local", upstream.url)) == "t0 t1 t2 "
    assert time.monotonic() - started < http.TAIL_SECONDS + 1.0


async def test_no_cookie_is_kept_between_turns(upstream: KeepAliveServer) -> None:
    upstream.set_cookie = True
    provider = OpenAIProvider("local", upstream.url)
    await answer(provider)
    await answer(provider)
    assert upstream.cookies_seen == [None, None]


def _proxy_env(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def test_proxies_are_chosen_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    _proxy_env(monkeypatch, HTTPS_PROXY="proxy.internal:3128", NO_PROXY="localhost,.corp.example")
    assert http._proxy_for("https", "api.openai.com") == "http://proxy.internal:3128"
    assert http._proxy_for("https", "models.corp.example") is None
    assert http._proxy_for("http", "api.openai.com") is None  # no HTTP_PROXY set
    _proxy_env(monkeypatch, ALL_PROXY="http://all.internal:8080")
    assert http._proxy_for("http", "vllm.local") == "http://all.internal:8080"
    _proxy_env(monkeypatch)
    assert http._proxy_for("https", "api.openai.com") is None


async def test_an_upstream_behind_a_proxy_is_reached_through_it(
    upstream: KeepAliveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The test server stands in for the proxy: the upstream's own host does not even resolve.
    _proxy_env(monkeypatch, HTTP_PROXY=upstream.url.removesuffix("/v1"))
    assert await answer(OpenAIProvider("local", "http://upstream.invalid/v1")) == "t0 t1 t2 "
    assert upstream.request_lines == ["post http://upstream.invalid/v1/chat/completions http/1.1"]
