"""A real HTTP/1.1 server on 127.0.0.1 that replays scripted upstream answers to the provider tests.

Each request gets the next `Reply` (the last one repeats): a status, headers, and a body written as a list of byte
chunks (chunked transfer encoding) with optional delays, an optional hang, or an abort mid-body. Every request is
recorded (method, path, headers, JSON body) together with whether the client hung up before the reply was sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Self

from assistant_chat.providers.base import Delta, Finish, StreamItem


@dataclass
class Reply:
    status: int = 200
    chunks: list[bytes] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "text/event-stream"})
    delay: float = 0.0  # seconds before each chunk after the first
    hang_before: float = 0.0  # seconds before the status line
    hang_after: float = 0.0  # seconds after the last chunk, before the body ends
    abort: bool = False  # close the socket instead of ending the chunked body


def error_reply(status: int, body: Any, headers: dict[str, str] | None = None) -> Reply:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Reply(status=status, chunks=[raw], headers={"content-type": "application/json", **(headers or {})})


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def events(data: bytes) -> list[bytes]:
    """Split a fixture after each blank line (LF or CRLF framing), one SSE event per chunk."""
    out: list[bytes] = []
    sep = b"\r\n\r\n" if b"\r\n\r\n" in data else b"\n\n"
    while (index := data.find(sep)) != -1:
        out.append(data[: index + len(sep)])
        data = data[index + len(sep) :]
    return out + ([data] if data else [])


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    disconnected_early: bool = False  # the client closed the connection before the reply was complete
    finished: bool = False  # the server wrote the whole reply
    settled: asyncio.Event = field(default_factory=asyncio.Event, repr=False)  # finished or disconnected_early


class LocalServer:
    """A TCP server on 127.0.0.1 for a test's lifetime; `handle` serves each connection. Leaving the block cancels
    the handlers still running, and every connection is closed when its handler ends."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def origin(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self.handle(reader, writer)
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


class ReplayServer(LocalServer):
    def __init__(self, *replies: Reply) -> None:
        super().__init__()
        self.replies = list(replies)
        self.requests: list[Recorded] = []

    @property
    def url(self) -> str:
        return self.origin

    def script(self, *replies: Reply) -> None:
        self.replies = list(replies)

    async def wait_done(self) -> Recorded:
        """The last request, once the server has either finished the reply or seen the client leave."""
        record = self.requests[-1]
        async with asyncio.timeout(3):
            await record.settled.wait()
        return record

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await self._serve(reader, writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        method, path, _version = head[0].split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:] if line)}
        raw = await reader.readexactly(int(headers.get("content-length", "0")))
        record = Recorded(method, path, headers, json.loads(raw) if raw else None)
        self.requests.append(record)
        reply = self.replies[min(len(self.requests), len(self.replies)) - 1]

        # Every reply is `connection: close`, so the client sends nothing more: EOF on the reader means it hung up.
        gone = asyncio.ensure_future(reader.read(1))

        async def pause(seconds: float) -> bool:
            """Sleep, or return True at once if the client disconnects meanwhile."""
            if seconds:
                await asyncio.wait([gone], timeout=seconds)
            return gone.done()

        async def send(data: bytes) -> bool:
            writer.write(data)
            try:
                await writer.drain()
            except ConnectionError:
                return True
            return gone.done()

        try:
            if await pause(reply.hang_before):
                record.disconnected_early = True
                return
            streamed = reply.status == 200 and reply.headers.get("content-type", "").startswith("text/event-stream")
            lines = [f"HTTP/1.1 {reply.status} Scripted", "connection: close"]
            lines += [f"{k}: {v}" for k, v in reply.headers.items()]
            body = b"".join(reply.chunks)
            lines.append("transfer-encoding: chunked" if streamed else f"content-length: {len(body)}")
            if await send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")):
                record.disconnected_early = True
                return
            if not streamed:
                await send(body)
                record.finished = True
                return
            for index, chunk in enumerate(reply.chunks):
                if (index and await pause(reply.delay)) or await send(b"%x\r\n%s\r\n" % (len(chunk), chunk)):
                    record.disconnected_early = True
                    return
            if await pause(reply.hang_after):
                record.disconnected_early = True
                return
            if reply.abort:
                writer.transport.abort()
            else:
                await send(b"0\r\n\r\n")
            record.finished = True
        finally:
            gone.cancel()
            record.settled.set()


async def collect(stream: AsyncIterator[StreamItem]) -> tuple[str, Finish]:
    """Consume a whole provider stream: the joined deltas and the one `Finish`, which must come last."""
    items = [item async for item in stream]
    assert items and isinstance(items[-1], Finish), items
    assert all(isinstance(item, Delta) for item in items[:-1]), items
    return "".join(item.text for item in items if isinstance(item, Delta)), items[-1]


async def collect_until_error(stream: AsyncIterator[StreamItem]) -> tuple[str, BaseException]:
    """Consume a stream that must fail: the text yielded before the error, and the error. No `Finish` may come."""
    text = ""
    try:
        async for item in stream:
            assert isinstance(item, Delta), f"got {item!r} from a stream that should fail"
            text += item.text
    except Exception as exc:
        return text, exc
    raise AssertionError("the stream did not fail")
