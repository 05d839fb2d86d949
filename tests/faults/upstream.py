"""A scriptable model upstream for the fault suite, run as its own process (`python tests/faults/upstream.py PORT`).

It speaks OpenAI's streaming Chat Completions (the room reaches it as a registered model endpoint). What it answers is
set by a directive in the last user message, e.g. `How? [[words=200 rate=10 silent_at=5 silent_for=7 tag=q2]]`:
`words` numbered words ("q2w001 q2w002 ..."; unique, so lost or repeated text is visible), `rate` words per
second, and optionally a silence of `silent_for` seconds after word `silent_at`. No Django here.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys

DIRECTIVE = re.compile(r"\[\[(.*?)\]\]")


def plan(body: dict) -> dict[str, float | str]:
    settings: dict[str, float | str] = {"words": 20, "rate": 20.0, "silent_at": -1, "silent_for": 0.0, "tag": ""}
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    found = DIRECTIVE.search(str(users[-1].get("content", ""))) if users else None
    for item in found.group(1).split() if found else []:
        key, _, value = item.partition("=")
        if key in settings:
            settings[key] = value if key == "tag" else float(value)
    return settings


def words(settings: dict[str, float | str]) -> list[str]:
    return [f"{settings['tag']}w{index:03d} " for index in range(1, int(settings["words"]) + 1)]


def _chunk(payload: bytes) -> bytes:
    return f"{len(payload):x}\r\n".encode() + payload + b"\r\n"


def _event(delta: dict, finish: str | None) -> bytes:
    data = {"id": "faults", "object": "chat.completion.chunk", "model": "faults", "choices": [
        {"index": 0, "delta": delta, "finish_reason": finish}
    ]}  # fmt: skip
    return b"data: " + json.dumps(data).encode() + b"\n\n"


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            body = json.loads(await reader.readexactly(length) or b"{}")
            settings = plan(body)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
            loop = asyncio.get_running_loop()
            started = loop.time()
            pause = 0.0
            for index, word in enumerate(words(settings), start=1):
                writer.write(_chunk(_event({"content": word}, None)))
                await writer.drain()
                if index == int(settings["silent_at"]):
                    pause += float(settings["silent_for"])
                due = started + pause + index / float(settings["rate"])
                await asyncio.sleep(max(0.0, due - loop.time()))
            writer.write(_chunk(_event({}, "stop") + b"data: [DONE]\n\n") + b"0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
