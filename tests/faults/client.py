"""A room member for the fault suite: a `websockets` client that applies frames exactly as `room.js` does, and
counts every way that could go wrong.

The rules it shares with `static/assistant_chat/room.js`:
- on open: one `turn.resume` (seq and characters held) for each answer still streaming here, then
  `conversation.sync` with the last message id held; a socket resumes each answer at most once;
- `assistant.start` with `resume`: resume it (unless this socket already did);
- a delta is applied only when it continues the seq held (`from_seq` = held + 1); an older one is a duplicate and
  ignored; a gap asks to resume (once per socket);
- `assistant.done` / `assistant.error` end the answer: its saved text replaces what was assembled, and anything for
  that answer afterwards is ignored (and counted);
- `room.resync`: `conversation.sync` again;
- a `message.send` answered with a retryable error, or not confirmed when the socket drops, is sent again with the
  same `client_id` (the server saves it once);
- closed with 4401/4403: stop; any other close: reconnect (to `pick()`'s process).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Stream:
    seq: int = 0
    text: str = ""


@dataclass
class Stats:
    applied_deltas: int = 0
    duplicate_deltas: int = 0  # deltas for text already held
    after_end: int = 0  # frames for an answer after its end (deltas, starts, second ends)
    gaps: int = 0  # deltas that did not continue what was held (the client asked to resume)
    reconnects: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


class Member:
    def __init__(
        self,
        name: str,
        cookie: str,
        urls: list[str],
        *,
        conversation_id: int = 0,
        reconnect: bool = True,
        pick: Callable[[list[str]], str] | None = None,
    ) -> None:
        self.name = name
        self.cookie = cookie
        self.urls = urls
        self.conversation_id = conversation_id
        self.reconnect = reconnect
        self.pick = pick or (lambda urls: urls[0])
        self.url = ""
        self.socket: Any = None
        self.streams: dict[int, Stream] = {}
        self.ended: dict[int, dict[str, Any]] = {}  # message id -> the saved message from its end
        self.assembled: dict[int, str] = {}  # message id -> the text applied from deltas when the end arrived
        self.messages: dict[int, dict[str, Any]] = {}
        self.starts: list[int] = []  # assistant message ids in the order their start arrived
        self.events: list[tuple[float, dict[str, Any]]] = []  # (wall clock, event)
        self.last_message_id = 0
        self.resumed: set[int] = set()  # on the current socket
        self.pending: dict[str, dict[str, Any]] = {}  # client_id -> message.send frame awaiting its chat.message
        self.closed_with: list[tuple[float, int]] = []  # (wall clock, close code)
        self.presence: list[str] = []
        self.stats = Stats()
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._stopped = False
        self._open = asyncio.Event()

    # --- connection -------------------------------------------------------------------------------------------

    async def start(self, url: str | None = None) -> None:
        await self._connect(url or self.pick(self.urls))
        self._task = asyncio.ensure_future(self._run())

    async def _connect(self, url: str) -> None:
        import websockets

        self.url = url
        self.socket = await websockets.connect(
            url.replace("http://", "ws://") + "/ws/rooms/lab/",
            additional_headers={"Cookie": self.cookie},
            origin=url,  # type: ignore[arg-type]
            open_timeout=10,
        )
        self.resumed = set()
        self._open.set()
        # Answers in flight first (an end may be close), then whatever arrived while away.
        for message_id, stream in self.streams.items():
            if message_id not in self.ended:
                await self._resume(message_id, stream)
        if self.conversation_id:
            await self._send(
                {"type": "conversation.sync", "conversation_id": self.conversation_id, "after_id": self.last_message_id}
            )
        for frame in list(self.pending.values()):
            await self._send(frame)

    async def _run(self) -> None:
        import websockets

        while not self._stopped:
            try:
                async for raw in self.socket:
                    self._handle(json.loads(raw))
                code = self.socket.close_code or 1006
            except websockets.ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd else 1006
            except Exception:
                code = 1006
            self._open.clear()
            self.closed_with.append((time.time(), code))
            self._changed.set()
            if self._stopped or not self.reconnect or code in (4401, 4403):
                return
            while not self._stopped:
                await asyncio.sleep(0.05 if code == 4012 else 0.2)
                try:
                    await self._connect(self.pick(self.urls))
                    self.stats.reconnects += 1
                    break
                except Exception:  # noqa: S112 - that process is down: try another
                    continue

    async def drop(self) -> None:
        """The network drops (the client reconnects on its own)."""
        with contextlib.suppress(Exception):
            await self.socket.close()

    async def stop(self) -> None:
        self._stopped = True
        with contextlib.suppress(Exception):
            await self.socket.close()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 5)

    async def _send(self, frame: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):  # a closed socket: the reconnect sends what is pending
            await self.socket.send(json.dumps(frame))

    async def _resume(self, message_id: int, stream: Stream) -> None:
        if message_id in self.resumed:
            return
        self.resumed.add(message_id)
        frame = {"type": "turn.resume", "message_id": message_id, "last_seq": stream.seq, "chars": len(stream.text)}
        await self._send(frame)

    # --- intents ----------------------------------------------------------------------------------------------

    async def ask(self, content: str, *, client_id: str | None = None) -> str:
        client_id = client_id or f"{self.name}-{time.monotonic_ns()}"
        frame = {
            "type": "message.send",
            "conversation_id": self.conversation_id,
            "content": content,
            "client_id": client_id,
        }
        self.pending[client_id] = frame
        await self._send(frame)
        return client_id

    async def send(self, frame: dict[str, Any]) -> None:
        await self._send(frame)

    # --- applying frames, as room.js does ---------------------------------------------------------------------

    def _handle(self, event: dict[str, Any]) -> None:
        self.events.append((time.time(), event))
        kind = event["type"]
        if kind == "chat.message":
            message = event["message"]
            self.messages[message["id"]] = message
            self.last_message_id = max(self.last_message_id, message["id"])
            self.pending.pop(event.get("client_id", ""), None)
        elif kind == "assistant.start":
            message = event["message"]
            message_id = message["id"]
            if message_id in self.ended:
                self.stats.after_end += 1
                return
            self.messages[message_id] = message
            self.last_message_id = max(self.last_message_id, message_id)
            if message_id not in self.streams:
                self.streams[message_id] = Stream()
                self.starts.append(message_id)
            if event.get("resume"):
                asyncio.ensure_future(self._resume(message_id, self.streams[message_id]))
        elif kind == "assistant.delta":
            self._apply(event)
        elif kind in ("assistant.done", "assistant.error"):
            message = event["message"]
            if message["id"] in self.ended:
                self.stats.after_end += 1
                return
            self.ended[message["id"]] = message
            self.assembled[message["id"]] = self.streams.get(message["id"], Stream()).text
            self.messages[message["id"]] = message
            self.last_message_id = max(self.last_message_id, message["id"])
        elif kind == "room.resync":
            asyncio.ensure_future(
                self._send(
                    {
                        "type": "conversation.sync",
                        "conversation_id": self.conversation_id,
                        "after_id": self.last_message_id,
                    }
                )
            )
        elif kind == "presence":
            self.presence = event["members"]
        elif kind == "error":
            self.stats.errors.append(event)
            frame = self.pending.get(event.get("client_id", ""))
            if frame is not None and event.get("retryable"):
                asyncio.get_running_loop().call_later(0.5, lambda: asyncio.ensure_future(self._send(frame)))
        self._changed.set()

    def _apply(self, delta: dict[str, Any]) -> None:
        message_id = delta["message_id"]
        if message_id in self.ended:
            self.stats.after_end += 1
            return
        stream = self.streams.get(message_id)
        if stream is None:
            # An answer this client has not seen start: ask for the conversation (room.js does the same).
            self.stats.gaps += 1
            asyncio.ensure_future(
                self._send(
                    {
                        "type": "conversation.sync",
                        "conversation_id": self.conversation_id,
                        "after_id": self.last_message_id,
                    }
                )
            )
            return
        first = delta.get("from_seq", delta["seq"])
        if delta["seq"] <= stream.seq:
            self.stats.duplicate_deltas += 1
            return
        if first != stream.seq + 1:
            self.stats.gaps += 1
            asyncio.ensure_future(self._resume(message_id, stream))
            return
        stream.seq = delta["seq"]
        stream.text += delta["text"]
        self.stats.applied_deltas += 1

    # --- waiting --------------------------------------------------------------------------------------------------

    async def until(self, check: Callable[[], Any], wait: float, what: str = "") -> Any:
        deadline = time.monotonic() + wait
        while True:
            result = check()
            if result:
                return result
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.name}: {what or 'condition'} not met within {wait:.0f} s")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 0.5))

    async def ended_with(self, message_id: int, wait: float) -> dict[str, Any]:
        return await self.until(lambda: self.ended.get(message_id), wait, f"the end of answer {message_id}")

    async def started(self, wait: float, after: int = 0) -> int:
        """The id of the first answer that started after answer id `after`."""
        return await self.until(
            lambda: next((m for m in self.starts if m > after), None), wait, f"an answer after {after}"
        )

    def text(self, message_id: int) -> str:
        return self.streams.get(message_id, Stream()).text

    def question(self, client_id: str) -> dict[str, Any] | None:
        return next(
            (
                message
                for _at, event in self.events
                if event["type"] == "chat.message" and event.get("client_id") == client_id
                for message in [event["message"]]
            ),
            None,
        )

    def closed(self) -> tuple[float, int] | None:
        return self.closed_with[-1] if self.closed_with else None


def random_process(rng: random.Random) -> Callable[[list[str]], str]:
    return lambda urls: rng.choice(urls)
