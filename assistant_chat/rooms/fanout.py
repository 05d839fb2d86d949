"""Room fan-out within one process: the channel layer is crossed once per process and room, not once per socket.

Each process keeps one `RoomHub` per room that has local sockets. The hub holds one channel in the room's layer
group; every event crosses the layer once to reach it and is written, already encoded, to each local socket
(DESIGN §5: Daphne writes frames 15-25x faster than `group_send` per member delivers them). The hub also keeps
each live turn's deltas in `seq` order, so a reconnecting client gets exactly what it missed, and fills gaps
(a hub that subscribed mid-turn, or frames lost in a channel-layer outage) from the process running the turn.
Presence is the union of every hub's local members; changes within PRESENCE_DELAY of the last presence frame go
out together, and hubs re-announce themselves every PRESENCE_HEARTBEAT, so the members of a process that died are
dropped after PRESENCE_EXPIRY. Under Daphne a frame is framed once (RFC 6455) and written straight to each socket's
TCP connection when nothing is queued on it (`_DirectWriter`); elsewhere it goes through the socket's `base_send`.

Faults (docs/rooms.md): the Redis layer's connection pool reconnects command by command, but a restarted Redis has
lost every group membership and every message in flight. So any layer error seen here (a receive, a publish, a
heartbeat) starts one recovery per process: once the layer answers again every hub re-adds itself to its group,
says hello (presence), fetches what its live turns missed from their runners, and tells its sockets to re-sync
(`room.resync`). Hubs also re-add themselves on every heartbeat. Turns whose runner is gone are ended by the
supervisor (`recovery`), which calls `RoomHub.end_from_saved`. Imports no consumers: sockets register themselves.
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
# Every hub re-announces its members (and re-adds itself to its group) this often; a hub not heard from for
# PRESENCE_EXPIRY (its process died without saying goodbye) has its members dropped from the room's presence.
PRESENCE_HEARTBEAT = 15.0
PRESENCE_EXPIRY = 40.0
# Every process's own channel is in this group: access changes (a member removed, a logout) reach every process.
CONTROL_GROUP = "rooms-control"


def room_group(room_id: int) -> str:
    """The channel-layer group of a room's hubs (one per process with members in it)."""
    return f"room-{room_id}"


RETRY_FIRST, RETRY_MAX = 0.1, 2.0  # backoff while the channel layer is unreachable
SUBSCRIBE_WAIT = 2.0  # a joining socket waits at most this long for its new hub to join the room's group
RESUME_GRACE = 3.0  # a turn's end waits this long for a socket that just joined (or was told of it) to resume


class LocalSocket(Protocol):
    """What a consumer gives its hub: who it is, the raw ASGI send (frames skip the consumer entirely), and a way
    to have it check its access again (it closes itself when the access is gone)."""

    user_id: int
    channel_name: str
    base_send: Callable[[dict[str, Any]], Awaitable[None]]

    async def recheck_access(self, ended_sessions: frozenset[str]) -> None: ...


@dataclass
class Piece:
    text: str
    html: str
    html_upto: int
    frame: str  # the encoded `assistant.delta` event


@dataclass
class TurnLog:
    """One turn's deltas as this hub has them. `delivered` is the highest seq written to local sockets; every
    seq up to it is in `pieces` (a gap is filled before anything after it is written).

    Per socket, a turn is in one of three states, so that no socket gets a delta twice or anything after the end:
    a *watcher* holds every delta up to `delivered` and gets the next ones live (`held` names watchers that hold
    more than `delivered`, having caught up elsewhere: they are skipped up to what they hold); a socket that joined
    mid-turn is told the turn exists (`assistant.start` with `resume`) and becomes a watcher when it resumes from the
    seq it holds; once a socket has been sent the end it is in `ended` and gets nothing more of this turn."""

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
    watchers: dict[str, LocalSocket] = field(default_factory=dict)
    held: dict[str, int] = field(default_factory=dict)
    ended: set[str] = field(default_factory=set)
    # Sockets waiting for a backfill to answer their resume: they get the end from `resume`, after their text.
    resuming: set[str] = field(default_factory=set)
    greeted: dict[str, float] = field(default_factory=dict)  # socket -> when (monotonic) it was told to resume
    # Ended from its saved message while its last deltas were still on their way here (the runner saves before its
    # publisher has sent everything): the saved text after `delivered`, and the saved seq. Resumes get it too.
    tail: str = ""
    tail_seq: int = 0

    def catch_up(self, last_seq: int) -> str | None:
        """One delta frame with all text after `last_seq` that local sockets have been sent, and the saved tail
        (None if nothing). `last_seq` must not exceed `delivered`."""
        if last_seq >= self.delivered and not self.tail:
            return None
        pieces = [self.pieces[seq] for seq in range(last_seq + 1, self.delivered + 1)]
        html_pieces = [piece for piece in pieces if piece.html]
        event = events.assistant_delta(
            conversation_id=self.conversation_id,
            message_id=self.message_id,
            seq=self.tail_seq if self.tail else self.delivered,
            text="".join(piece.text for piece in pieces) + self.tail,
            html="".join(piece.html for piece in html_pieces),
            html_upto=html_pieces[-1].html_upto if html_pieces else 0,
        )
        event["from_seq"] = last_seq + 1
        return events.encode(event)

    def text(self) -> str:
        return "".join(self.pieces[seq].text for seq in range(1, self.delivered + 1))

    def watch(self, name: str, socket: LocalSocket, holds: int) -> None:
        self.watchers[name] = socket
        if holds > self.delivered:
            self.held[name] = holds

    def recipients(self, seq: int) -> dict[str, LocalSocket]:
        """The watchers that do not hold delta `seq` yet."""
        if not self.held:
            return self.watchers
        for name in [name for name, holds in self.held.items() if holds < seq]:
            del self.held[name]
        return {name: socket for name, socket in self.watchers.items() if name not in self.held}


class RoomHub:
    def __init__(self, manager: Fanout, room_id: int) -> None:
        self.manager = manager
        self.room_id = room_id
        self.group = room_group(room_id)
        self.sockets: dict[str, LocalSocket] = {}
        self.joined: dict[str, float] = {}  # socket -> when (monotonic) it joined
        self.channel = ""
        self.logs: dict[int, TurnLog] = {}
        # Other processes' hubs: their members, and when (monotonic) each last announced itself.
        self.remote_presence: dict[str, tuple[frozenset[int], float]] = {}
        self.presence_users: frozenset[int] = frozenset()
        self.presence_names: list[str] = []  # the last list written: what a joining socket is shown first
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._subscribing: asyncio.Task[None] | None = None
        self._missed = False  # events may have been lost since the last subscription: reconcile once subscribed
        self._announcing: asyncio.Task[None] | None = None
        self._announce_again = False
        self._presence_timer: asyncio.TimerHandle | None = None
        self._presence_task: asyncio.Task[None] | None = None
        self._presence_written = 0.0
        self._backfill_waiters: dict[int, asyncio.Future[dict[str, Any]]] = {}

    # --- life: subscribe, re-subscribe after an outage, stop ---------------------------------------------------

    async def start(self) -> None:
        """Start receiving and join the room's group. Never fails on the channel layer: when the first try does not
        succeed within SUBSCRIBE_WAIT the hub keeps trying in the background, and its sockets are told to re-sync
        once it has joined."""
        # One prefix per process: channels_redis reads all of this process's channels with one BZPOPMIN.
        self.channel = await self.manager.layer.new_channel()
        self._task = asyncio.ensure_future(self._receive_loop())
        self._heartbeat = asyncio.ensure_future(self._beat())
        try:
            # Joined before the first socket is registered, so it misses nothing sent to the room after its join.
            await asyncio.wait_for(self.manager.layer.group_add(self.group, self.channel), SUBSCRIBE_WAIT)
        except Exception as exc:
            self.manager.layer_failed(exc)
            self.resubscribe(missed=True)
        else:
            self.announce_soon(hello=True)

    def resubscribe(self, *, missed: bool) -> None:
        """(Re-)add this hub to its group, then say hello; with `missed`, also fetch what live turns missed and
        ask the sockets to re-sync. Single-flight: a call while subscribing only adds `missed`."""
        self._missed = self._missed or missed
        if self._stopping:
            return
        if self._subscribing is None or self._subscribing.done():
            self._subscribing = asyncio.ensure_future(self._subscribe())

    async def _subscribe(self) -> None:
        delay = RETRY_FIRST
        while not self._stopping:
            try:
                await self.manager.layer.group_add(self.group, self.channel)
                break
            except Exception as exc:
                self._missed = True  # whatever was sent to the room meanwhile did not reach this hub
                self.manager.layer_failed(exc, "group_add")
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
        if self._stopping:
            return
        self.announce_soon(hello=True)
        if self._missed:
            self._missed = False
            for log in list(self.logs.values()):
                if not log.finished:
                    self._start_backfill(log, force=True)
            await self.write_all(events.encode(events.room_resync()))

    async def stop(self) -> None:
        """Leave the group and end the receive loop. Never raises: a hub stopped during an outage finishes later."""
        self._stopping = True
        for task in (self._heartbeat, self._subscribing, self._announcing):
            if task is not None:
                task.cancel()  # only ever cancelled in a sleep or a send, never mid-receive
        if self._presence_timer is not None:
            self._presence_timer.cancel()
        # Best effort, and never holding up a join or leave of the room (Redis may be frozen): a membership left
        # behind only receives messages that expire.
        asyncio.ensure_future(self._leave_group())

    async def _leave_group(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.manager.layer.group_discard(self.group, self.channel), SUBSCRIBE_WAIT)
        await self._send_stop()

    async def _send_stop(self) -> None:
        # Stop the loop with a message, never by cancelling it: channels_redis can lose a popped message (and
        # break the process's shared receive) when a receive() is cancelled mid-read. During an outage the loop ends
        # on its next error; the message is sent again until it goes, so a loop that survived the outage ends too.
        delay = RETRY_FIRST
        for _ in range(200):
            try:
                await self.manager.layer.send(self.channel, {"type": "hub.stop"})
                return
            except Exception:
                if self._task is None or self._task.done():
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)

    def local_users(self) -> frozenset[int]:
        return frozenset(socket.user_id for socket in self.sockets.values())

    def announce_soon(self, *, hello: bool = False) -> None:
        """Announce this hub's members in the background (a join must not wait on Redis); failures start a
        recovery, which announces again."""
        if self._stopping:
            return
        if self._announcing is not None and not self._announcing.done():
            self._announce_again = True
            return
        self._announcing = asyncio.ensure_future(self._announce(hello))

    async def _announce(self, hello: bool) -> None:
        while True:
            self._announce_again = False
            try:
                await self.announce_presence(hello=hello)
            except Exception as exc:
                self.manager.layer_failed(exc)
                return
            if not self._announce_again:
                return

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

    # --- writing to local sockets ---------------------------------------------------------------------------------

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
            except Exception as exc:  # a Redis outage must not end the room's fan-out in this process
                if self._stopping:
                    return
                self.manager.layer_failed(exc, "receive")
                await asyncio.sleep(0.25)
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
            await self._on_start(message)
        elif kind == "room.delta":
            await self._on_delta(message)
        elif kind == "room.end":
            await self._on_end(message)
        elif kind == "room.saved_end":
            log = self.log_for(message)
            await self.end_from_saved(log, message["message"])
        elif kind == "room.presence":
            await self._on_presence(message)
        elif kind == "room.backfill":
            waiter = self._backfill_waiters.pop(message["message_id"], None)
            if waiter is not None and not waiter.done():
                waiter.set_result(message)

    def log_for(self, message: dict[str, Any]) -> TurnLog:
        message_id = message["message_id"]
        log = self.logs.get(message_id)
        if log is None:
            log = self.logs[message_id] = TurnLog(message_id, message["conversation_id"], message["origin"])
        return log

    async def _on_start(self, message: dict[str, Any]) -> None:
        log = self.log_for(message)
        if log.finished:
            return  # a start published again after an outage
        if log.start_frame is None and log.delivered == 0 and not log.pieces:
            log.complete_from_start = True
        log.start_frame = message["frame"]
        told = {name: socket for name, socket in self.sockets.items() if name not in log.ended}
        for name, socket in told.items():
            if name not in log.watchers:
                log.watch(name, socket, 0)
        await self.write_to(told, message["frame"])

    async def _on_delta(self, message: dict[str, Any]) -> None:
        log = self.log_for(message)
        seq = message["seq"]
        if log.finished or seq <= log.delivered or seq in log.pieces:
            return  # already have it (a backfill got there first, or it was published twice)
        log.pieces[seq] = Piece(message["text"], message.get("html", ""), message.get("html_upto", 0), message["frame"])
        if seq == log.delivered + 1:
            await self._flush(log)
        else:
            self._start_backfill(log)  # subscribed mid-turn, or the layer lost messages: fetch what is missing

    async def _on_end(self, message: dict[str, Any]) -> None:
        log = self.log_for(message)
        if log.finished:
            return
        log.end_seq = message["seq"]
        log.end_frame = message["frame"]
        if log.delivered < message["seq"]:
            self._start_backfill(log)
        await self._flush(log)

    async def _flush(self, log: TurnLog) -> None:
        """Write every contiguous delta after `delivered`, then the end event once all deltas are out."""
        while log.delivered + 1 in log.pieces:
            log.delivered += 1
            await self.write_to(log.recipients(log.delivered), log.pieces[log.delivered].frame)
        if log.end_frame is not None and not log.finished and log.delivered >= (log.end_seq or 0):
            await self._finish(log)

    async def _finish(self, log: TurnLog) -> None:
        """Send the end to every socket of the room here that has not had it, once. Resuming sockets get it from
        their resume, after their text; so do sockets that joined or were greeted within RESUME_GRACE and do not
        watch the turn yet (their resume is on its way: sent the end first, they would never get the text between
        what they hold and the end). If no resume comes, they get the end when the grace is over."""
        assert log.end_frame is not None
        log.finished = True
        now = time.monotonic()
        told: dict[str, LocalSocket] = {}
        waiting: list[str] = []
        for name, socket in self.sockets.items():
            if name in log.resuming or name in log.ended:
                continue
            recent = max(self.joined.get(name, 0.0), log.greeted.get(name, 0.0))
            if name not in log.watchers and now - recent < RESUME_GRACE:
                waiting.append(name)
            else:
                told[name] = socket
        log.ended.update(told)
        log.watchers.clear()
        log.held.clear()
        await self.write_to(told, log.end_frame)
        loop = asyncio.get_running_loop()
        if waiting:
            loop.call_later(RESUME_GRACE, lambda: asyncio.ensure_future(self._end_for(log, waiting)))
        loop.call_later(LOG_KEEP_SECONDS, self.logs.pop, log.message_id, None)

    async def _end_for(self, log: TurnLog, names: list[str]) -> None:
        """The end, for sockets given RESUME_GRACE to resume that did not (or are still resuming: they get it there)."""
        late = {
            name: self.sockets[name]
            for name in names
            if name in self.sockets and name not in log.ended and name not in log.resuming
        }
        log.ended.update(late)
        if late and log.end_frame is not None:
            await self.write_to(late, log.end_frame)

    async def end_from_saved(self, log: TurnLog, saved: events.MessagePayload) -> None:
        """End a turn from its saved message, when its runner cannot end it (its process died, or its end was lost
        in an outage): watchers first get the saved text they lack, when it continues what they hold, then the
        saved message (authoritative: clients replace what they assembled with it)."""
        if log.finished:
            return
        content, saved_seq = saved["content"], saved["seq"]
        if log.complete_from_start and saved_seq > log.delivered:
            held = log.text()
            if content.startswith(held) and len(content) > len(held):
                log.tail, log.tail_seq = content[len(held) :], saved_seq
                behind = {name: socket for name, socket in log.watchers.items() if name not in log.held}
                if (frame := log.catch_up(log.delivered)) is not None:
                    await self.write_to(behind, frame)
        log.end_seq = saved_seq
        log.end_frame = events.encode(events.assistant_end(saved))
        await self._finish(log)

    def _start_backfill(self, log: TurnLog, *, force: bool = False) -> None:
        """Fetch the turn's log from its runner (single-flight). `force` asks even when nothing is known to be
        missing: after an outage, frames and the end may have been lost without a trace."""
        if log.backfill is None or log.backfill.done():
            log.backfill = asyncio.ensure_future(self._backfill(log))
        elif force:
            log.backfill.add_done_callback(lambda _task: self._start_backfill(log))

    async def _backfill(self, log: TurnLog) -> None:
        """Fetch the turn's deltas from the process running it and write what local sockets missed, in order."""
        joined_mid_turn = not log.complete_from_start
        try:
            reply = await self.manager.fetch_turn_log(log.origin, log.message_id, reply_to=self.channel, hub=self)
        except Exception as exc:
            self.manager.layer_failed(exc)
            reply = None
        if reply is None or not reply.get("known", True):
            # The runner is gone or has forgotten the turn: the supervisor ends it from the database.
            logger.info("room %s: no backfill for turn %s from %s", self.room_id, log.message_id, log.origin)
            return
        if log.finished:
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
            for socket in list(self.sockets.values()):
                await self.greet(socket, only=log)

    def expect_backfill(self, message_id: int) -> asyncio.Future[dict[str, Any]]:
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._backfill_waiters[message_id] = waiter
        return waiter

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(PRESENCE_HEARTBEAT)
            try:
                # Re-adding refreshes the membership (channels_redis drops members older than its group expiry,
                # a day) and restores it if Redis lost it without any error reaching this process.
                await self.manager.layer.group_add(self.group, self.channel)
                await self.announce_presence()
            except Exception as exc:  # the recovery re-subscribes and announces
                self.manager.layer_failed(exc)
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
                self.announce_soon()
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
        self,
        socket: LocalSocket,
        *,
        message_id: int,
        last_seq: int,
        origin: str,
        conversation_id: int,
        saved: events.MessagePayload | None = None,
        chars: int | None = None,
    ) -> None:
        """Send `socket` every delta of a turn after `last_seq` as one frame and make it a watcher, or, when the
        turn has ended, its end; at most once per socket and turn. `saved` is the message when the database already
        has it finished (then a hub that does not have the turn answers with it, and `chars`, the length of the text
        the client holds, lets it send the rest of the saved text first)."""
        name = socket.channel_name
        one = {name: socket}  # the same write path as live frames, so order holds
        log = self.logs.get(message_id)
        if log is None:
            if saved is not None:
                # A turn this hub never had, or forgot: the rest of the saved text, then the saved message.
                await self._rest_from_saved(one, saved, last_seq, chars)
                await self.write_to(one, events.encode(events.assistant_end(saved)))
                return
            log = self.logs[message_id] = TurnLog(message_id, conversation_id, origin)
        if name in log.ended or name in log.watchers:
            return  # it has the end already, or holds everything up to `delivered` and gets the rest live
        if saved is not None and not log.finished:
            # The database has it finished and its end has not reached this hub: end it now, for every socket, and
            # give this one the text it lacks below, before its end.
            log.resuming.add(name)
            try:
                await self.end_from_saved(log, saved)
            finally:
                log.resuming.discard(name)
        if not log.complete_from_start and not log.finished:
            # This hub subscribed after the turn began: fetch the start from the process running it.
            if log.backfill is None or log.backfill.done():
                log.backfill = asyncio.ensure_future(self._backfill(log))
            log.resuming.add(name)
            try:
                with contextlib.suppress(Exception):
                    await asyncio.shield(log.backfill)
            finally:
                log.resuming.discard(name)
            if name in log.ended or name in log.watchers:
                return
        if log.finished:
            if log.complete_from_start and (last_seq <= log.delivered or not log.tail):
                if last_seq <= log.delivered and (frame := log.catch_up(last_seq)) is not None:
                    await self.write_to(one, frame)
            elif log.end_frame is not None:  # ended from the saved message without all its frames here
                await self._rest_from_saved(one, json.loads(log.end_frame)["message"], last_seq, chars)
            log.ended.add(name)
            assert log.end_frame is not None
            await self.write_to(one, log.end_frame)
            return
        if not log.complete_from_start:
            # Its runner did not answer: watch it anyway, holding what the client holds. The supervisor ends it
            # from the database if its process died; if it lives, its next frames fill the gap.
            log.watch(name, socket, last_seq)
            return
        frame = log.catch_up(last_seq)
        log.watch(name, socket, last_seq)  # before the write: nothing can slip in between
        if frame is not None:
            await self.write_to(one, frame)

    async def _rest_from_saved(
        self, one: dict[str, LocalSocket], saved: events.MessagePayload, last_seq: int, chars: int | None
    ) -> None:
        """The saved text after the `chars` characters a resuming client holds, as one catch-up delta (nothing when
        it did not say, or holds it all, or the saved text is shorter: an interrupted turn's last checkpoint)."""
        if chars is None or saved["seq"] <= last_seq or len(saved["content"]) <= chars:
            return
        event = events.assistant_delta(
            conversation_id=saved["conversation_id"],
            message_id=saved["id"],
            seq=saved["seq"],
            text=saved["content"][chars:],
        )
        event["from_seq"] = last_seq + 1
        await self.write_to(one, events.encode(event))

    async def greet(self, socket: LocalSocket, only: TurnLog | None = None) -> None:
        """Tell a socket that just joined about turns in flight; it resumes each from the seq it holds."""
        name = socket.channel_name
        for log in [only] if only is not None else list(self.logs.values()):
            if log.finished or log.start_frame is None or name in log.watchers or name in log.ended:
                continue
            event = json.loads(log.start_frame)
            event["resume"] = True  # "ask me for this turn's text": the socket does not get it live yet
            log.greeted[name] = time.monotonic()
            await self.write_to({name: socket}, events.encode(event))

    async def deliver_saved(self, socket: LocalSocket, saved: events.MessagePayload) -> None:
        """A finished answer from the database, for a client re-syncing: sent unless this socket already had the
        end from this hub (a turn this hub has not seen end is ended now, for all its sockets)."""
        name = socket.channel_name
        log = self.logs.get(saved["id"])
        if log is not None:
            if name in log.ended:
                return
            if not log.finished:
                await self.end_from_saved(log, saved)
                return
            log.ended.add(name)
        await self.write_to({name: socket}, events.encode(events.assistant_end(saved)))


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
    """The per-process (per event loop) registry of room hubs, and the process's own channel: the turn runner's
    address for cancels and replays, and this process's seat in CONTROL_GROUP for access changes."""

    def __init__(self) -> None:
        self.layer = get_channel_layer()
        self.hubs: dict[int, RoomHub] = {}
        self._writers: dict[str, _DirectWriter | None] = {}  # by socket channel name
        self._locks: dict[int, asyncio.Lock] = {}
        self.turn_log_source: Callable[[int], dict[str, Any] | None] | None = None
        # Messages to the process channel, by type (the runner registers turn.cancel, turn.replay, ...).
        self.handlers: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {"access.recheck": self._recheck}
        self.process_channel = ""
        self.draining = False  # this process is shutting down: no new sockets, no new turns
        self._started = asyncio.Lock()
        self._background: list[asyncio.Task[None]] = []
        self._recovering: asyncio.Task[None] | None = None
        self.outages: list[tuple[float, float]] = []  # (lost, back) monotonic times of channel-layer outages

    @property
    def runner_channel(self) -> str:
        return self.process_channel

    async def ensure_started(self) -> str:
        """The process channel and its listener, started once."""
        async with self._started:
            if not self.process_channel:
                self.process_channel = await self.layer.new_channel()
                self._background.append(asyncio.ensure_future(self._listen()))
                self._background.append(asyncio.ensure_future(self._control_membership()))
        return self.process_channel

    async def join(self, room_id: int, socket: LocalSocket) -> RoomHub:
        await self.ensure_started()
        async with self._locks.setdefault(room_id, asyncio.Lock()):
            hub = self.hubs.get(room_id)
            if hub is None:
                hub = RoomHub(self, room_id)
                await hub.start()  # never waits for Redis; a hub that cannot subscribe yet keeps trying
                self.hubs[room_id] = hub
                metrics.room_opened()
            before = hub.local_users()
            hub.sockets[socket.channel_name] = socket
            metrics.socket_opened()
            hub.joined[socket.channel_name] = time.monotonic()
            if hub.local_users() != before:
                hub.announce_soon()
        return hub

    async def leave(self, room_id: int, socket: LocalSocket) -> None:
        """Forget a socket (closed, failed or cut off). Never raises: a socket that is gone must not stay listed."""
        async with self._locks.setdefault(room_id, asyncio.Lock()):
            self._writers.pop(socket.channel_name, None)
            hub = self.hubs.get(room_id)
            if hub is None or hub.sockets.pop(socket.channel_name, None) is None:
                return
            hub.joined.pop(socket.channel_name, None)
            metrics.socket_closed()
            for log in hub.logs.values():
                log.watchers.pop(socket.channel_name, None)
                log.held.pop(socket.channel_name, None)
            if not hub.sockets:
                del self.hubs[room_id]
                metrics.room_closed()
                await hub.stop()
            else:
                hub.announce_soon()

    def sockets(self) -> list[LocalSocket]:
        return [socket for hub in self.hubs.values() for socket in hub.sockets.values()]

    def writer(self, socket: LocalSocket) -> _DirectWriter | None:
        try:
            return self._writers[socket.channel_name]
        except KeyError:
            writer = self._writers[socket.channel_name] = _DirectWriter.find(socket)
            return writer

    async def publish(self, room_id: int, message: dict[str, Any]) -> None:
        """Send one event to every process's hub of the room (the layer is crossed once per process). Raises when
        the layer is unreachable (after starting the recovery): the caller decides what waits for it."""
        try:
            await self.layer.group_send(room_group(room_id), message)
        except Exception as exc:
            self.layer_failed(exc, "publish")
            raise

    async def publish_event(self, room_id: int, event: Any) -> None:
        await self.publish(room_id, {"type": "room.event", "frame": events.encode(event)})

    async def fetch_turn_log(
        self, origin: str, message_id: int, *, reply_to: str, hub: RoomHub
    ) -> dict[str, Any] | None:
        """A turn's deltas from the process running it: directly when that is this process, else over the layer."""
        if origin == self.process_channel and self.turn_log_source is not None:
            return self.turn_log_source(message_id) or {"known": False}
        if not origin:
            return None
        waiter = hub.expect_backfill(message_id)
        await self.layer.send(origin, {"type": "turn.replay", "message_id": message_id, "reply_to": reply_to})
        try:
            return await asyncio.wait_for(waiter, BACKFILL_TIMEOUT)
        except TimeoutError:
            return None

    # --- the process channel ------------------------------------------------------------------------------------

    async def _listen(self) -> None:
        while True:
            try:
                message = await self.layer.receive(self.process_channel)
            except Exception as exc:  # an outage must not stop this process answering cancels and replays
                self.layer_failed(exc, "receive")
                await asyncio.sleep(0.25)
                continue
            handler = self.handlers.get(message.get("type", ""))
            if handler is None:
                continue
            try:
                await handler(message)
            except Exception:
                logger.exception("could not handle %s", message.get("type"))

    async def _control_membership(self) -> None:
        """Keep this process in CONTROL_GROUP (re-added on every heartbeat, as hubs are in their rooms')."""
        while True:
            try:
                await self.layer.group_add(CONTROL_GROUP, self.process_channel)
            except Exception as exc:
                self.layer_failed(exc)
            await asyncio.sleep(PRESENCE_HEARTBEAT)

    async def _recheck(self, message: dict[str, Any]) -> None:
        """Access changed (a member removed, a logout, a deactivation, a password change): every affected socket
        here checks its access again and closes itself if it is gone."""
        users = set(message.get("users") or ())
        rooms = set(message.get("rooms") or ())
        everyone = bool(message.get("all"))
        ended = frozenset(message.get("sessions") or ())
        for room_id, hub in list(self.hubs.items()):
            for socket in list(hub.sockets.values()):
                if everyone or room_id in rooms or socket.user_id in users:
                    asyncio.ensure_future(socket.recheck_access(ended))

    # --- outages ------------------------------------------------------------------------------------------------

    def layer_failed(self, exc: BaseException | None = None, operation: str = "group_send") -> None:
        """Something here could not reach the channel layer (`operation`, counted in the metrics): start (once)
        waiting for it to come back, then have every hub re-subscribe, catch up and tell its sockets to re-sync."""
        metrics.channel_layer_error(operation)
        if self._recovering is None or self._recovering.done():
            logger.warning("channel layer unreachable (%s); rooms here recover when it is back", exc)
            self._recovering = asyncio.ensure_future(self._recover())

    async def _recover(self) -> None:
        lost = time.monotonic()
        delay = RETRY_FIRST
        await self.ensure_started()
        while True:
            try:
                await self.layer.group_add(CONTROL_GROUP, self.process_channel)
                break
            except Exception:
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
        back = time.monotonic()
        self.outages.append((lost, back))
        logger.warning("channel layer is back after %.1f s; re-subscribing %d room hub(s)", back - lost, len(self.hubs))
        for hub in list(self.hubs.values()):
            hub.resubscribe(missed=True)

    # --- shutdown -----------------------------------------------------------------------------------------------

    def close_all_sockets(self, code: int) -> int:
        """Close every local socket (a process shutting down: clients reconnect, to another process behind a
        proxy). Returns how many."""
        sockets = self.sockets()
        for socket in sockets:
            asyncio.ensure_future(_close(socket, code))
        return len(sockets)

    def stop_background(self) -> None:
        """Tests: stop this process's listener tasks (each test has its own event loop and fan-out)."""
        for task in self._background:
            task.cancel()


async def _close(socket: LocalSocket, code: int) -> None:
    try:
        await socket.base_send({"type": "websocket.close", "code": code})
    except Exception:
        logger.warning("could not close socket %s", socket.channel_name, exc_info=True)


_instances: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Fanout] = weakref.WeakKeyDictionary()


def fanout() -> Fanout:
    """This process's fan-out (one per event loop, so tests that each run their own loop stay apart)."""
    loop = asyncio.get_running_loop()
    instance = _instances.get(loop)
    if instance is None:
        instance = _instances[loop] = Fanout()
    return instance


def instances() -> list[Fanout]:
    return list(_instances.values())
