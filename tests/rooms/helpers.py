"""Room fixtures for consumer tests: users, a room on an assistant with files, sockets that speak the protocol."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model

from assistant_chat import services
from assistant_chat.models import Assistant, ModelEndpoint, Room
from assistant_chat.rooms.routing import websocket_urlpatterns
from tests.providers.replay_server import Reply

ORIGIN = (b"origin", b"http://127.0.0.1:8000")


def make_user(username: str, **extra: Any) -> Any:
    return get_user_model().objects.create_user(username=username, password="pw-" + username, **extra)


def make_assistant(name: str = "handbook") -> Assistant:
    assistant = services.assistant_create(name=name)
    for file_name, text, metadata in (
        ("otters.txt", "Sea otters use rocks as tools to crack open shellfish.", {"team": "wildlife"}),
        ("bees.txt", "Honeybees dance to tell other bees where the flowers are.", {"team": "insects"}),
    ):
        services.file_upload(assistant=assistant, name=file_name, data=text.encode(), metadata=metadata)[2].result(30)
    return assistant


def make_room(slug: str, assistant: Assistant, members: list[Any], **fields: Any) -> Room:
    room = Room.objects.create(name=slug.title(), slug=slug, assistant=assistant, **fields)
    room.members.set(members)
    return room


def make_world(title: str = "Questions") -> dict[str, Any]:
    """alice and bob in room `lab`, carol alone in room `other` (both on one assistant), and alice's conversation."""
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    assistant = make_assistant()
    room = make_room("lab", assistant, [alice, bob])
    other = make_room("other", assistant, [carol])
    conversation = services.conversation_create(room=room, user=alice, title=title)
    return {"alice": alice, "bob": bob, "carol": carol, "room": room, "other": other, "conversation": conversation}


def register_upstream(url: str, model_id: str = "replay") -> str:
    ModelEndpoint.objects.create(model_id=model_id, base_url=f"{url}/v1", upstream_model="up")
    return model_id


def openai_stream(
    tokens: list[str], delay: float = 0.0, *, finish: bool = True, error_after: int | None = None
) -> Reply:
    """An OpenAI-compatible stream of `tokens`, one SSE event each (optionally an error event mid-stream)."""
    chunks = []
    for index, token in enumerate(tokens):
        if error_after is not None and index == error_after:
            chunks.append(b'data: {"error": {"message": "upstream exploded", "type": "server_error"}}\n\n')
            break
        body = {"id": "c", "object": "chat.completion.chunk", "model": "up", "choices": [
            {"index": 0, "delta": {"content": token}, "finish_reason": None}
        ]}  # fmt: skip
        chunks.append(b"data: " + json.dumps(body).encode() + b"\n\n")
    if finish and error_after is None:
        end = {"id": "c", "object": "chat.completion.chunk", "model": "up", "choices": [
            {"index": 0, "delta": {}, "finish_reason": "stop"}
        ]}  # fmt: skip
        chunks += [b"data: " + json.dumps(end).encode() + b"\n\n", b"data: [DONE]\n\n"]
    return Reply(chunks=chunks, delay=delay)


class Socket:
    """A member's room socket with helpers to wait for events by type."""

    def __init__(self, user: Any, slug: str, *, origin: tuple[bytes, bytes] | None = ORIGIN) -> None:
        from channels.routing import URLRouter

        headers = [origin] if origin else []
        self.communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/rooms/{slug}/", headers)
        self.communicator.scope["user"] = user
        self.seen: list[dict[str, Any]] = []

    async def connect(self) -> bool:
        connected, _ = await self.communicator.connect()
        return connected

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.communicator.send_to(text_data=frame if isinstance(frame, str) else json.dumps(frame))

    async def next(self, wait: float = 10) -> dict[str, Any]:
        event = json.loads(await self.communicator.receive_from(wait))
        self.seen.append(event)
        return event

    async def until(self, kind: str, wait: float = 10, **match: Any) -> dict[str, Any]:
        async with asyncio.timeout(wait):
            while True:
                event = await self.next(wait)
                if event["type"] == kind and all(event.get(k) == v for k, v in match.items()):
                    return event

    def deltas(self, message_id: int) -> list[dict[str, Any]]:
        return [e for e in self.seen if e["type"] == "assistant.delta" and e["message_id"] == message_id]

    def text_of(self, message_id: int) -> str:
        return "".join(e["text"] for e in self.deltas(message_id))

    async def nothing(self, wait: float = 0.3) -> bool:
        return await self.communicator.receive_nothing(wait)

    async def close(self) -> None:
        await self.communicator.disconnect()


adb = database_sync_to_async
