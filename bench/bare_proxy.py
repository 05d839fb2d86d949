"""The least any Daphne + httpx proxy can cost: an ASGI app that reads the request, streams the upstream's answer
through one pooled httpx transport and relays each chunk as it comes. No Django, no database, no prompt.

Served by `chat_bench.py` as a reference row in the same run (`daphne bench.bare_proxy:application`), so that what
the chat pipeline adds can be split into what Daphne and httpx cost by themselves and what this project's own code
costs. The upstream URL comes from `BARE_PROXY_UPSTREAM`.
"""

from __future__ import annotations

import json
import os
from typing import Any

import httpx

_transport: httpx.AsyncHTTPTransport | None = None


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _transport
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["method"] != "POST":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    if _transport is None:
        _transport = httpx.AsyncHTTPTransport()
    messages = json.loads(body)["messages"]
    upstream = httpx.Request(
        "POST",
        os.environ["BARE_PROXY_UPSTREAM"],
        json={"model": "bench-upstream", "messages": messages, "stream": True},
        extensions={"timeout": {"connect": 10.0, "read": 300.0, "write": 30.0, "pool": 10.0}},
    )
    response = await _transport.handle_async_request(upstream)
    try:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        async for chunk in response.aiter_raw():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    finally:
        await response.aclose()
    await send({"type": "http.response.body", "body": b""})
