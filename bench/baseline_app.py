"""The textbook fan-out, for `bench/fanout_bench.py` only: every socket joins a Channels group and the turn does one
`group_send` per delta, so each delta is one channel-layer message per member, dispatched by each member's consumer
and JSON-encoded once per member (what the Channels tutorial's chat does).

    daphne bench.baseline_app:application

serves the whole site (`chatsite.asgi`) plus `ws/baseline/<slug>/`, behind the same session and Origin checks as the
room sockets. A `message.send` on a baseline socket starts a fake turn: no database, no prompt, no saving; it
streams the room's registered upstream (BASELINE_UPSTREAM_URL) and publishes its deltas with the same coalescing
rule as the turn runner (first text at once, then at most one frame per CHAT_COALESCE_MS; 0 = one frame per upstream
token), in the same frame shapes (`assistant.start`, `assistant.delta`, `assistant.done`). Never used by the site.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import httpx
from channels.auth import AuthMiddlewareStack
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.routing import URLRouter
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.urls import path

from chatsite.asgi import application as site_application

UPSTREAM_URL = os.environ.get("BASELINE_UPSTREAM_URL", "")
_turns: set[asyncio.Task[None]] = set()
_next_message_id = 1_000_000


class BaselineConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4403)
            return
        self.group = "baseline-" + self.scope["url_route"]["kwargs"]["slug"]
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        frame = json.loads(text_data or "{}")
        if frame.get("type") == "message.send":
            task = asyncio.ensure_future(fake_turn(self.channel_layer, self.group, frame["conversation_id"]))
            _turns.add(task)
            task.add_done_callback(_turns.discard)

    # One handler call per member per delta; each encodes its own frame.
    async def assistant_start(self, event: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(event, ensure_ascii=False, separators=(",", ":")))

    async def assistant_delta(self, event: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(event, ensure_ascii=False, separators=(",", ":")))

    async def assistant_done(self, event: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(event, ensure_ascii=False, separators=(",", ":")))


async def fake_turn(layer: Any, group: str, conversation_id: int) -> None:
    global _next_message_id
    _next_message_id += 1
    message_id = _next_message_id
    window = settings.CHAT_COALESCE_MS / 1000
    payload = {"id": message_id, "conversation_id": conversation_id, "role": "assistant", "content": "", "seq": 0}
    await layer.group_send(group, {"type": "assistant.start", "message": payload})
    parts: list[str] = []
    pending: list[str] = []
    seq = 0
    last_flush = 0.0
    timer: asyncio.Task[None] | None = None

    async def flush() -> None:
        nonlocal seq, last_flush
        if not pending:
            return
        last_flush = time.monotonic()
        text = "".join(pending)
        pending.clear()
        seq += 1
        await layer.group_send(
            group,
            {
                "type": "assistant.delta",
                "conversation_id": conversation_id,
                "message_id": message_id,
                "seq": seq,
                "text": text,
            },
        )

    async def flush_later(delay: float) -> None:
        nonlocal timer
        await asyncio.sleep(delay)
        timer = None
        await flush()

    body = {"model": "bench-upstream", "messages": [{"role": "user", "content": "go"}], "stream": True}
    async with httpx.AsyncClient(timeout=60) as client:
        async with client.stream("POST", f"{UPSTREAM_URL}/chat/completions", json=body) as response:
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                choices = json.loads(line[6:]).get("choices") or [{}]
                text = (choices[0].get("delta") or {}).get("content")
                if not text:
                    continue
                parts.append(text)
                pending.append(text)
                now = time.monotonic()
                if now - last_flush >= window:
                    if timer is not None:
                        timer.cancel()
                        timer = None
                    await flush()
                elif timer is None:
                    timer = asyncio.ensure_future(flush_later(window - (now - last_flush)))
    if timer is not None:
        timer.cancel()
    await flush()
    payload = {**payload, "content": "".join(parts), "seq": seq, "status": "complete"}
    await layer.group_send(group, {"type": "assistant.done", "message": payload})


_baseline_sockets = OriginValidator(
    AuthMiddlewareStack(URLRouter([path("ws/baseline/<slug:slug>/", BaselineConsumer.as_asgi())])),
    [*settings.ALLOWED_HOSTS, *settings.CHAT_ALLOWED_ORIGINS],
)


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "websocket" and scope["path"].startswith("/ws/baseline/"):
        await _baseline_sockets(scope, receive, send)
    else:
        await site_application(scope, receive, send)
