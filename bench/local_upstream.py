"""A local model upstream for the benchmarks: OpenAI's streaming Chat Completions at a fixed token rate.

Shared by `chat_bench.py` (what the chat path adds) and `fanout_bench.py` (room fan-out). Each stream's token emit
times are kept (wall clock, comparable across processes) and served at `GET /emits` for the latest stream.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import socket
import time
from collections.abc import Callable
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _chunk(payload: bytes) -> bytes:
    return f"{len(payload):x}\r\n".encode() + payload + b"\r\n"


def _event(delta: dict, finish: str | None, **extra: object) -> bytes:
    data = {
        "id": "up",
        "object": "chat.completion.chunk",
        "model": "bench-upstream",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }
    return b"data: " + json.dumps(data).encode() + b"\n\n"


async def start_upstream(
    port: int, tokens: int, rate: float, token: Callable[[int], str]
) -> tuple[asyncio.Server, list[list[float]]]:
    """Serve on 127.0.0.1:`port`: every POST streams `tokens` tokens (`token(i)`) at `rate` per second, the first
    at once. Returns the server and the emit times of each stream so far (appended as streams start)."""
    emits: list[list[float]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                if head.startswith(b"GET /emits"):
                    body = json.dumps(emits[-1] if emits else []).encode()
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body) + body)
                    await writer.drain()
                    continue
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
                )
                times: list[float] = []
                emits.append(times)
                # Tokens are due at fixed times from the first, not `sleep(1/rate)` after each write: when this
                # loop also serves a benchmark client, sleep-after-write drifts (timer rounding per wake-up), and
                # the drift once read as ~45 ms "added at the end" of every stream through the server.
                started = time.perf_counter()
                for index in range(tokens):
                    times.append(time.time())  # taken at the write
                    writer.write(_chunk(_event({"content": token(index)}, None)))
                    await writer.drain()
                    if index < tokens - 1:
                        await asyncio.sleep(max(0.0, started + (index + 1) / rate - time.perf_counter()))
                usage = {"prompt_tokens": 10, "completion_tokens": tokens, "total_tokens": tokens + 10}
                writer.write(_chunk(_event({}, "stop", usage=usage) + b"data: [DONE]\n\n"))
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except asyncio.CancelledError:
            pass  # the run is over; a pooled connection to us was still open
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", port), emits


def upstream_process(port: int, tokens: int, rate: float, token: Callable[[int], str]) -> multiprocessing.Process:
    """Start the upstream in a process of its own, as a real model server is, and return once it listens. (In the
    benchmark's own process, a direct call would cost no cross-process wake-ups, which no real client gets.)"""
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    process = context.Process(target=_serve, args=(port, tokens, rate, token, ready), daemon=True)
    process.start()
    if not ready.wait(30):
        process.terminate()
        raise RuntimeError("the local upstream did not start")
    return process


def _serve(port: int, tokens: int, rate: float, token: Callable[[int], str], ready: Any) -> None:
    async def serve() -> None:
        server, _emits = await start_upstream(port, tokens, rate, token)
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(serve())
