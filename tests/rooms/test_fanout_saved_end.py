"""A turn ended from its saved message while its last deltas are still on their way through the channel layer (the
runner saves before its publisher has sent everything): every socket, watching or resuming, still ends up with the
whole saved text, each piece once. Found by the fault suite's flaky-network test under load; here the race is made
certain by calling the hub in the order it happened."""

from __future__ import annotations

import json
from typing import Any

from assistant_chat.rooms import events, fanout


class Manager:
    layer = None

    def writer(self, _socket: Any) -> None:
        return None  # every frame goes through the socket's own base_send

    def layer_failed(self, *_args: Any) -> None:  # pragma: no cover - no layer is used
        raise AssertionError("no layer here")


class Socket:
    def __init__(self, name: str) -> None:
        self.user_id = 1
        self.channel_name = name
        self.frames: list[dict[str, Any]] = []

    async def base_send(self, message: dict[str, Any]) -> None:
        self.frames.append(json.loads(message["text"]))

    async def recheck_access(self, ended_sessions: frozenset[str]) -> None:
        return None

    def assembled(self) -> str:
        """The text as a client assembles it: deltas in seq order, skipping what it holds already."""
        text, seq = "", 0
        for frame in self.frames:
            if frame["type"] == "assistant.delta":
                first = frame.get("from_seq", frame["seq"])
                assert first == seq + 1, f"{self.channel_name}: delta from {first} after {seq}"
                text += frame["text"]
                seq = frame["seq"]
        return text

    def ends(self) -> list[dict[str, Any]]:
        return [frame for frame in self.frames if frame["type"] in ("assistant.done", "assistant.error")]


WORDS = ["alpha ", "bravo ", "charlie ", "delta ", "echo ", "foxtrot"]
MESSAGE, CONVERSATION = 7, 3


def payload(content: str, seq: int, status: str = "complete") -> dict[str, Any]:
    return {"id": MESSAGE, "conversation_id": CONVERSATION, "content": content, "seq": seq, "status": status}


def delta(seq: int) -> dict[str, Any]:
    text = WORDS[seq - 1]
    frame = events.encode(events.assistant_delta(conversation_id=CONVERSATION, message_id=MESSAGE, seq=seq, text=text))
    return {"type": "room.delta", "message_id": MESSAGE, "seq": seq, "text": text, "frame": frame}


def hub_with_turn(*sockets: Socket) -> fanout.RoomHub:
    hub = fanout.RoomHub(Manager(), room_id=1)  # type: ignore[arg-type]
    for socket in sockets:
        hub.sockets[socket.channel_name] = socket
    return hub


async def start_and_stream(hub: fanout.RoomHub, upto: int) -> None:
    start = events.encode({"type": "assistant.start", "message": payload("", 0, "streaming")})  # type: ignore[arg-type]
    await hub._handle({"type": "room.start", "message_id": MESSAGE, "conversation_id": CONVERSATION,
                       "origin": "runner!x", "frame": start})  # fmt: skip
    for seq in range(1, upto + 1):
        await hub._handle({**delta(seq), "conversation_id": CONVERSATION, "origin": "runner!x"})


async def test_a_resume_that_ends_the_turn_from_the_database_gets_the_saved_tail_before_the_end():
    watcher, returning = Socket("watcher"), Socket("returning")
    hub = hub_with_turn(watcher)
    await start_and_stream(hub, upto=3)
    # `returning` held deltas 1-2 on another process, dropped, and lands here; the answer is saved complete (seq 6)
    # while deltas 4-6 and the end are still in the layer.
    hub.sockets["returning"] = returning
    returning.frames.extend(watcher.frames[:3])  # what it had: the start and deltas 1-2
    saved = payload("".join(WORDS), 6)
    await hub.resume(returning, message_id=MESSAGE, last_seq=2, origin="runner!x", conversation_id=CONVERSATION,
                     saved=saved, chars=len("".join(WORDS[:2])))  # type: ignore[arg-type]  # fmt: skip
    # The late deltas and the runner's own end arrive and change nothing.
    for seq in range(4, 7):
        await hub._handle({**delta(seq), "conversation_id": CONVERSATION, "origin": "runner!x"})
    for socket in (watcher, returning):
        assert socket.assembled() == "".join(WORDS), socket.channel_name
        assert len(socket.ends()) == 1 and socket.frames[-1]["type"] == "assistant.done", socket.channel_name


async def test_a_socket_resuming_after_the_turn_ended_from_the_database_gets_the_saved_tail_too():
    watcher, late = Socket("watcher"), Socket("late")
    hub = hub_with_turn(watcher)
    await start_and_stream(hub, upto=3)
    log = hub.logs[MESSAGE]
    await hub.end_from_saved(log, payload("".join(WORDS), 6))  # type: ignore[arg-type]
    assert watcher.assembled() == "".join(WORDS)
    for held in (0, 1, 3):  # from nothing, from the middle of the hub's deltas, from all the hub had
        late = Socket(f"late{held}")
        hub.sockets[late.channel_name] = late
        late.frames.extend(watcher.frames[: 1 + held])
        await hub.resume(late, message_id=MESSAGE, last_seq=held, origin="runner!x", conversation_id=CONVERSATION,
                         chars=len("".join(WORDS[:held])))  # fmt: skip
        assert late.assembled() == "".join(WORDS), held
        assert late.ends() and late.frames[-1]["type"] == "assistant.done"


async def test_a_socket_holding_more_than_the_hub_gets_the_rest_by_its_characters():
    """It streamed deltas 1-4 from another process; this hub had 1-3 when the turn ended from the database."""
    watcher, ahead = Socket("watcher"), Socket("ahead")
    hub = hub_with_turn(watcher)
    await start_and_stream(hub, upto=3)
    await hub.end_from_saved(hub.logs[MESSAGE], payload("".join(WORDS), 6))  # type: ignore[arg-type]
    hub.sockets["ahead"] = ahead
    await hub.resume(ahead, message_id=MESSAGE, last_seq=4, origin="runner!x", conversation_id=CONVERSATION,
                     chars=len("".join(WORDS[:4])))  # fmt: skip
    rest = [frame for frame in ahead.frames if frame["type"] == "assistant.delta"]
    assert [(frame["from_seq"], frame["text"]) for frame in rest] == [(5, "".join(WORDS[4:]))]
    assert ahead.frames[-1]["type"] == "assistant.done"
