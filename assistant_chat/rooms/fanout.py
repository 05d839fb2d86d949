"""Room fan-out within one process: the channel layer is crossed once per process and room, not once per socket.

Each process keeps one `RoomHub` per room that has local sockets. The hub holds one channel in the room's layer
group; every event crosses the layer once to reach it and is written, already encoded, to each local socket
(DESIGN §5: Daphne writes frames 15-25x faster than `group_send` per member delivers them). The hub also keeps
each live turn's deltas in `seq` order, so a reconnecting client gets exactly what it missed, and fills gaps
(a hub that subscribed mid-turn) from the process running the turn. Presence is the union of every hub's
local members; changes within PRESENCE_DELAY of the last presence frame go out together (a mass join costs a few
frames, not one per join), and hubs re-announce themselves every PRESENCE_HEARTBEAT, so the members of a process
that died are dropped after PRESENCE_EXPIRY. Under Daphne a frame is framed once (RFC 6455) and written straight
to each socket's TCP connection when nothing is queued on it (`_DirectWriter`: Daphne's own per-socket send path
costs ~60 us); elsewhere it goes through the socket's `base_send`. Imports no consumers: sockets register
themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from .. import selectors
from ..monitoring import metrics
from . import events

logger = logging.getLogger(__name__)

LOG_KEEP_SECONDS = 120.0  # a finished turn's deltas stay this long for late resumes; then the database answers
BACKFILL_TIMEOUT = 3.0
PRESENCE_DELAY = 0.25  # presence changes within this window go out as one frame
# Every hub re-announces its members this often; a hub not heard from for PRESENCE_EXPIRY (its process died
# without saying goodbye) has its members dropped from the room's presence.
PRESENCE_HEARTBEAT = 15.0
PRESENCE_EXPIRY = 40.0


class LocalSocket(Protocol):
    """What a consumer gives its hub: who it is and the raw ASGI send (frames skip the consumer entirely)."""

    user_id: int
    channel_name: str
    base_send: Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class Piece:
    text: str
    html: str
    html_upto: int
    frame: str  # the encoded `assistant.delta` event


@dataclass
class TurnLog:
    """One turn's deltas as this hub has them. `delivered` is the highest seq written to local sockets; every
    seq up to it is in `pieces` (a gap is filled before anything after it is written)."""

    message_id: int
    conversation_id: int
    origin: str
    pieces: dict[int, Piece] = field(default_factory=dict)
    delivered: int = 0
    complete_from_start: bool = False
    end_seq: int | None = None
    end_frame: str | None = None
    start_frame: str | None = None
    finished: bool = False
    backfill: asyncio.Task[None] | None = None
    # Sockets that hold every delta up to `delivered` and get the next ones live. A socket that joins mid-turn
    # is told the turn exists (`assistant.start`) and becomes a watcher when it resumes from the seq it holds,
    # so no socket ever gets the same text twice.
    watchers: dict[str, LocalSocket] = field(default_factory=dict)
    # Sockets waiting for a backfill to answer their resume: they get the end from `resume`, after their text.
    resuming: set[str] = field(default_factory=set)

    def catch_up(self, last_seq: int) -> str | None:
        """One delta frame with all text after `last_seq` that local sockets have been sent (None if nothing)."""
        if last_seq >= self.delivered:
            return None
        seqs = range(last_seq + 1, self.delivered + 1)
        pieces = [self.pieces[seq] for seq in seqs]
        html_pieces = [piece for piece in pieces if piece.html]
        event = events.assistant_delta(
            conversation_id=self.conversation_id,
            message_id=self.message_id,
            seq=self.delivered,
            text="".join(piece.text for piece in pieces),
            html="".join(piece.html for piece in html_pieces),
            html_upto=html_pieces[-1].html_upto if html_pieces else 0,
        )
        event["from_seq"] = last_seq + 1
        return events.encode(event)


class RoomHub:
    def __init__(self, manager: Fanout, room_id: int) -> None:
        self.manager = manager
        self.room_id = room_id
        self.group = f"room-{room_id}"
        self.sockets: dict[str, LocalSocket] = {}
        self.channel = ""
        self.logs: dict[int, TurnLog] = {}
        # Other processes' hubs: their members, and when (monotonic) each last announced itself.
        self.remote_presence: dict[str, tuple[frozenset[int], float]] = {}
        self._heartbeat: asyncio.Task[None] | None = None
        self.presence_users: frozenset[int] = frozenset()
        self.presence_names: list[str] = []  # the last list written: what a joining socket is shown first
        self._task: asyncio.Task[None] | None = None
        self._presence_timer: asyncio.TimerHandle | None = None
        self._presence_task: asyncio.Task[None] | None = None
        self._presence_written = 0.0
        self._backfill_waiters: dict[int, asyncio.Future[dict[str, Any]]] = {}

    # --- membership of local sockets --------------------------------------------------------------------------

    async def start(self) -> None:
        layer = self.manager.layer
        self.channel = (
            await layer.new_channel()
        )  # one prefix per process: channels_redis reads all of them with one BZPOPMIN
        await layer.group_add(self.group, self.channel)
        self._task = asyncio.ensure_future(self._receive_loop())
        self._heartbeat = asyncio.ensure_future(self._beat())

    async def stop(self) -> None:
        if self._presence_timer is not None:
            self._presence_timer.cancel()
        if self._heartbeat is not None:
            self._heartbeat.cancel()  # only ever cancelled in its sleep or a send, never mid-receive
        await self.manager.layer.group_discard(self.group, self.channel)
        # Stop the loop with a message, never by cancelling it: channels_redis can lose a popped message (and
        # break the process's shared receive) when a receive() is cancelled mid-read.
        await self.manager.layer.send(self.channel, {"type": "hub.stop"})

    def local_users(self) -> frozenset[int]:
        return frozenset(socket.user_id for socket in self.sockets.values())

    async def announce_presence(self, *, hello: bool = False) -> None:
        await self.manager.layer.group_send(
            self.group,
            {"type": "room.presence", "hub": self.channel, "users": sorted(self.local_users()), "hello": hello},
        )

    def present_users(self) -> frozenset[int]:
        users = set(self.local_users())
        for remote, _seen in self.remote_presence.values():
            users |= remote
        return frozenset(users)

    # --- publishing (called by the turn runner and consumers) ---------------------------------------------------

    async def write_all(self, frame: str) -> None:
        await self.write_to(self.sockets, frame)

    async def write_to(self, sockets: dict[str, LocalSocket], frame: str) -> None:
        metrics.frames_sent(len(sockets))
        message = {"type": "websocket.send", "text": frame}
        wire: bytes | None = None
        for socket in list(sockets.values()):
            try:
                writer = self.manager.writer(socket)
                if writer is None:
                    await socket.base_send(message)
                    continue
                if wire is None:
                    wire = _ws_text_frame(frame)
                writer.write(wire)
            except Exception:  # a socket closing mid-write must not stop the others
                logger.debug("write to %s failed", socket.channel_name, exc_info=True)

    # --- the layer side -----------------------------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        layer = self.manager.layer
        while True:
            try:
                message = await layer.receive(self.channel)
            except Exception:  # a Redis hiccup must not end the room's fan-out in this process
                metrics.channel_layer_error("receive")
                logger.exception("room %s: channel layer receive failed; retrying", self.room_id)
                await asyncio.sleep(0.5)
                continue
            if message["type"] == "hub.stop":
                return
            try:
                await self._handle(message)
            except Exception:
                logger.exception("room %s: could not handle %s", self.room_id, message.get("type"))

    async def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "room.event":
            await self.write_all(message["frame"])
        elif kind == "room.start":
            log = self._log(message)
            log.complete_from_start = True
            log.start_frame = message["frame"]
            log.watchers = dict(self.sockets)
            await self.write_all(message["frame"])
        elif kind == "room.delta":
            await self._on_delta(message)
        elif kind == "room.end":
            await self._on_end(message)
        elif kind == "room.presence":
            await self._on_presence(message)
        elif kind == "room.backfill":
            waiter = self._backfill_waiters.pop(message["message_id"], None)
            if waiter is not None and not waiter.done():
                waiter.set_result(message)

    def _log(self, message: dict[str, Any]) -> TurnLog:
        message_id = message["message_id"]
        log = self.logs.get(message_id)
        if log is None:
            log = self.logs[message_id] = TurnLog(message_id, message["conversation_id"], message["origin"])
        return log

    async def _on_delta(self, message: dict[str, Any]) -> None:
        log = self._log(message)
        seq = message["seq"]
        if seq <= log.delivered or seq in log.pieces:
            return  # already have it (a backfill got there first)
        log.pieces[seq] = Piece(message["text"], message.get("html", ""), message.get("html_upto", 0), message["frame"])
        if seq == log.delivered + 1:
            await self._flush(log)
        else:
            self._start_backfill(log)  # subscribed mid-turn, or the layer dropped a message: fetch what is missing

    async def _on_end(self, message: dict[str, Any]) -> None:
        log = self._log(message)
        log.end_seq = message["seq"]
        log.end_frame = message["frame"]
        if log.delivered < message["seq"]:
            self._start_backfill(log)
        await self._flush(log)

    async def _flush(self, log: TurnLog) -> None:
        """Write every contiguous delta after `delivered`, then the end event once all deltas are out."""
        while log.delivered + 1 in log.pieces:
            log.delivered += 1
            await self.write_to(log.watchers, log.pieces[log.delivered].frame)
        if log.end_frame is not None and not log.finished and log.delivered >= (log.end_seq or 0):
            log.finished = True
            log.watchers.clear()
            if log.resuming:
                others = {name: sock for name, sock in self.sockets.items() if name not in log.resuming}
                await self.write_to(others, log.end_frame)
            else:
                await self.write_all(log.end_frame)
            asyncio.get_running_loop().call_later(LOG_KEEP_SECONDS, self.logs.pop, log.message_id, None)

    def _start_backfill(self, log: TurnLog) -> None:
        if log.backfill is None or log.backfill.done():
            log.backfill = asyncio.ensure_future(self._backfill(log))

    async def _backfill(self, log: TurnLog) -> None:
        """Fetch the turn's deltas from the process running it and write what local sockets missed, in order."""
        joined_mid_turn = not log.complete_from_start
        reply = await self.manager.fetch_turn_log(log.origin, log.message_id, reply_to=self.channel, hub=self)
        if reply is None:
            logger.warning("room %s: no backfill for turn %s", self.room_id, log.message_id)
            return
        for seq, text, html, html_upto in reply["pieces"]:
            if seq > log.delivered and seq not in log.pieces:
                event = events.assistant_delta(
                    conversation_id=log.conversation_id,
                    message_id=log.message_id,
                    seq=seq,
                    text=text,
                    html=html,
                    html_upto=html_upto,
                )
                log.pieces[seq] = Piece(text, html, html_upto, events.encode(event))
        log.complete_from_start = True
        if reply.get("start_frame") and log.start_frame is None:
            log.start_frame = reply["start_frame"]
        if reply.get("end_frame") and log.end_frame is None:
            log.end_seq, log.end_frame = reply["end_seq"], reply["end_frame"]
        await self._flush(log)
        if joined_mid_turn and not log.finished:
            # This hub subscribed after the turn began, so its sockets never saw it start: tell them, and each
            # resumes from what it holds.
            for name, socket in list(self.sockets.items()):
                if name not in log.watchers and name not in log.resuming:
                    await self.greet(socket, only=log)

    def expect_backfill(self, message_id: int) -> asyncio.Future[dict[str, Any]]:
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._backfill_waiters[message_id] = waiter
        return waiter

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(PRESENCE_HEARTBEAT)
            try:
                await self.announce_presence()
            except Exception:  # a Redis hiccup: the next beat tries again
                metrics.channel_layer_error("group_send")
                logger.exception("room %s: presence heartbeat failed", self.room_id)
            now = time.monotonic()
            gone = [hub for hub, (_users, seen) in self.remote_presence.items() if now - seen > PRESENCE_EXPIRY]
            for hub in gone:
                _users, seen = self.remote_presence.pop(hub)
                logger.warning(
                    "room %s: no presence from %s for %.0f s; dropping its members", self.room_id, hub, now - seen
                )
            if gone:
                await self._presence_changed()

    async def _on_presence(self, message: dict[str, Any]) -> None:
        hub = message["hub"]
        if hub != self.channel:
            users = frozenset(message["users"])
            if users:
                self.remote_presence[hub] = (users, time.monotonic())
            else:
                self.remote_presence.pop(hub, None)
            if message.get("hello"):
                await self.announce_presence()
        await self._presence_changed()

    async def _presence_changed(self) -> None:
        if self._presence_timer is not None:
            return  # a write is already due and will include this change
        wait = self._presence_written + PRESENCE_DELAY - time.monotonic()
        if wait <= 0 and (self._presence_task is None or self._presence_task.done()):
            await self._write_presence()  # the first change in a while goes out at once, as before
        else:
            self._presence_timer = asyncio.get_running_loop().call_later(max(wait, 0.0), self._presence_due)

    def _presence_due(self) -> None:
        self._presence_timer = None
        if self._presence_task is not None and not self._presence_task.done():
            # Still writing the previous list: look again after it.
            self._presence_timer = asyncio.get_running_loop().call_later(PRESENCE_DELAY, self._presence_due)
            return
        self._presence_task = asyncio.ensure_future(self._write_presence())

    async def _write_presence(self) -> None:
        self._presence_written = time.monotonic()
        users = self.present_users()
        if users != self.presence_users:
            self.presence_users = users
            names = await database_sync_to_async(selectors.room_presence_names)(users)
            self.presence_names = names
            await self.write_all(events.encode(events.presence(names)))

    # --- resume -------------------------------------------------------------------------------------------------

    async def resume(
        self, socket: LocalSocket, *, message_id: int, last_seq: int, origin: str, conversation_id: int
    ) -> bool:
        """Send `socket` every delta of a live (or just finished) turn after `last_seq` as one frame, then the end
        event if the turn ended. Returns False when neither this hub nor the turn's process still has the turn
        (the caller then answers from the database)."""
        log = self.logs.get(message_id)
        if log is None:
            log = self.logs[message_id] = TurnLog(message_id, conversation_id, origin)
        if socket.channel_name in log.watchers:
            return True  # it already holds everything up to `delivered` and gets the rest live
        if not log.complete_from_start:
            # This hub subscribed after the turn began: fetch the start from the process running it.
            if log.backfill is None or log.backfill.done():
                log.backfill = asyncio.ensure_future(self._backfill(log))
            log.resuming.add(socket.channel_name)
            try:
                with contextlib.suppress(Exception):
                    await asyncio.shield(log.backfill)
            finally:
                log.resuming.discard(socket.channel_name)
            if not log.complete_from_start:
                if not log.pieces and log.end_frame is None:
                    self.logs.pop(message_id, None)
                return False
        frame = log.catch_up(last_seq)
        if not log.finished:
            log.watchers[socket.channel_name] = socket  # before the write: nothing can slip in between
        one = {socket.channel_name: socket}  # the same write path as live frames, so order holds
        if frame is not None:
            await self.write_to(one, frame)
        if log.finished and log.end_frame is not None:
            await self.write_to(one, log.end_frame)
        return True

    async def greet(self, socket: LocalSocket, only: TurnLog | None = None) -> None:
        """Tell a socket that just joined about turns in flight; it resumes each from the seq it holds."""
        for log in [only] if only is not None else list(self.logs.values()):
            if not log.finished and log.start_frame is not None:
                event = json.loads(log.start_frame)
                event["resume"] = True  # "ask me for this turn's text": the socket does not get it live yet
                await self.write_to({socket.channel_name: socket}, events.encode(event))


def _ws_text_frame(text: str) -> bytes:
    """One unfragmented, unmasked, uncompressed server text frame (RFC 6455 §5.2), built once for every socket."""
    payload = text.encode()
    length = len(payload)
    if length < 126:
        return bytes((0x81, length)) + payload
    if length < 65536:
        return bytes((0x81, 126)) + length.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + length.to_bytes(8, "big") + payload


class _DirectWriter:
    """Writes framed bytes to a Daphne websocket's TCP connection, skipping Daphne's per-message path (ASGI send,
    autobahn framing, Twisted's write buffer and two epoll changes per write), which costs ~60 us per socket and
    frame. The bytes go straight to the socket only while Twisted has nothing queued for it, so they can never
    overtake a frame sent the ordinary way (pings, close, a consumer's own events); otherwise, and for whatever the
    kernel does not take at once, they join Twisted's buffer in order."""

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol
        self.transport = protocol.transport
        self.open_state = type(protocol).STATE_OPEN

    def write(self, data: bytes) -> None:
        transport = self.transport
        if self.protocol.state != self.open_state or not transport.connected or transport.disconnecting:
            return  # closing: Daphne drops sends to closed sockets too
        if transport._tempDataLen or transport.offset != len(transport.dataBuffer):
            transport.write(data)
            return
        sent = transport.writeSomeData(data)
        if isinstance(sent, int) and sent < len(data):
            transport.write(data[sent:])
        # an exception object means the connection is gone; Twisted reports it to the protocol itself

    @classmethod
    def find(cls, socket: LocalSocket) -> _DirectWriter | None:
        """The writer for a socket served by Daphne over plain TCP without compression, else None. Follows the
        send callable down Channels' session wrapper (`real_send`) to Daphne's `partial(handle_reply, protocol)`."""
        send: Any = socket.base_send
        for _ in range(8):
            if isinstance(send, functools.partial):
                if getattr(send.func, "__qualname__", "") != "Server.handle_reply" or not send.args:
                    return None
                protocol = send.args[0]
                transport = getattr(protocol, "transport", None)
                usable = (
                    getattr(protocol, "_perMessageCompress", True) is None
                    and not getattr(protocol, "autoFragmentSize", 1)
                    and not getattr(transport, "TLS", True)
                    and all(
                        hasattr(transport, name)
                        for name in ("writeSomeData", "_tempDataLen", "offset", "dataBuffer", "connected")
                    )
                    and hasattr(type(protocol), "STATE_OPEN")
                )
                return cls(protocol) if usable else None
            send = getattr(getattr(send, "__self__", None), "real_send", None)
            if send is None:
                return None
        return None


class Fanout:
    """The per-process (per event loop) registry of room hubs and the channel the turn runner answers on."""

    def __init__(self) -> None:
        self.layer = get_channel_layer()
        self.hubs: dict[int, RoomHub] = {}
        self._writers: dict[str, _DirectWriter | None] = {}  # by socket channel name
        self._locks: dict[int, asyncio.Lock] = {}
        self.turn_log_source: Callable[[int], dict[str, Any] | None] | None = None
        self.runner_channel = ""

    async def join(self, room_id: int, socket: LocalSocket) -> RoomHub:
        async with self._locks.setdefault(room_id, asyncio.Lock()):
            hub = self.hubs.get(room_id)
            if hub is None:
                hub = self.hubs[room_id] = RoomHub(self, room_id)
                await hub.start()
                metrics.room_opened()
                hello = True
            else:
                hello = False
            before = hub.local_users()
            hub.sockets[socket.channel_name] = socket
            metrics.socket_opened()
            if hello or hub.local_users() != before:
                await hub.announce_presence(hello=hello)
        return hub

    async def leave(self, room_id: int, socket: LocalSocket) -> None:
        async with self._locks.setdefault(room_id, asyncio.Lock()):
            self._writers.pop(socket.channel_name, None)
            hub = self.hubs.get(room_id)
            if hub is None or hub.sockets.pop(socket.channel_name, None) is None:
                return
            metrics.socket_closed()
            for log in hub.logs.values():
                log.watchers.pop(socket.channel_name, None)
            await hub.announce_presence()
            if not hub.sockets:
                del self.hubs[room_id]
                metrics.room_closed()
                await hub.stop()

    def writer(self, socket: LocalSocket) -> _DirectWriter | None:
        try:
            return self._writers[socket.channel_name]
        except KeyError:
            writer = self._writers[socket.channel_name] = _DirectWriter.find(socket)
            return writer

    async def publish(self, room_id: int, message: dict[str, Any]) -> None:
        """Send one event to every process's hub of the room (the layer is crossed once per process)."""
        await self.layer.group_send(f"room-{room_id}", message)

    async def publish_event(self, room_id: int, event: Any) -> None:
        await self.publish(room_id, {"type": "room.event", "frame": events.encode(event)})

    async def fetch_turn_log(self, origin: str, message_id: int, *, reply_to: str, hub: RoomHub):
        """A turn's deltas from the process running it: directly when that is this process, else over the layer."""
        if origin == self.runner_channel and self.turn_log_source is not None:
            return self.turn_log_source(message_id)
        if not origin:
            return None
        waiter = hub.expect_backfill(message_id)
        await self.layer.send(origin, {"type": "turn.replay", "message_id": message_id, "reply_to": reply_to})
        try:
            return await asyncio.wait_for(waiter, BACKFILL_TIMEOUT)
        except TimeoutError:
            return None


_instances: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Fanout] = weakref.WeakKeyDictionary()


def fanout() -> Fanout:
    """This process's fan-out (one per event loop, so tests that each run their own loop stay apart)."""
    loop = asyncio.get_running_loop()
    instance = _instances.get(loop)
    if instance is None:
        instance = _instances[loop] = Fanout()
    return instance
