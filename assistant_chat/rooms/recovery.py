"""Each process's supervisor: ends turns whose process died and answers questions nobody is answering.

A turn's runner renews its lease every second (`turn_runner`); a lease that lapsed means that process stopped
writing. Every TICK the supervisor reads the state of the turns its members watch (their hubs' unfinished logs);
every SWEEP it also looks for any lapsed turn and any question queued for longer than QUEUE_MIN_AGE. For a lapsed
turn it first asks the runner's process over the channel layer (`turn.ping`): a process that answers is alive and
only cannot reach the database, so its turn is left alone; one that does not answer is dead, and the turn is ended
as `interrupted` with its last checkpoint (one conditional update, so of several processes exactly one does it),
published to the room with the saved message (`room.saved_end`) and delivered to local sockets at once, and the
conversation's next queued question is started. A turn the database has finished but whose end never reached a hub
(lost in an outage) is ended from the saved message after END_GRACE. Imports no consumers.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from channels.db import database_sync_to_async
from django.db import DatabaseError
from django.utils import timezone

from .. import selectors, services
from ..models import Message
from . import events

if TYPE_CHECKING:
    from .turn_runner import TurnRunner

logger = logging.getLogger(__name__)

db = database_sync_to_async

TICK = 0.5  # how often the turns members here watch are checked
SWEEP = 3.0  # how often every lapsed turn and every waiting question are looked for
QUEUE_MIN_AGE = 2.0  # a question queued for this long should have been started when the previous answer ended
END_GRACE = 2.0  # a turn saved this long ago whose end has not arrived here is ended from the saved message
PING_TIMEOUT = 1.0  # a runner that does not answer within this is taken for dead (its lease has lapsed too)


class Supervisor:
    def __init__(self, runner: TurnRunner) -> None:
        self.runner = runner
        self.fanout = runner.fanout
        self._pongs: dict[str, asyncio.Future[bool]] = {}
        self.fanout.handlers["turn.pong"] = self._on_pong

    def start(self) -> asyncio.Task[None]:
        return asyncio.ensure_future(self._loop())

    async def _loop(self) -> None:
        last_sweep = 0.0
        failing = False  # the database is unreachable: said once, not every tick
        while True:
            await asyncio.sleep(TICK)
            try:
                await self.check_watched()
                if time.monotonic() - last_sweep >= SWEEP:
                    last_sweep = time.monotonic()
                    await self.sweep()
            except DatabaseError as exc:
                if not failing:
                    logger.warning("supervisor: the database is unreachable (%s); trying again every %.1f s", exc, TICK)
                failing = True
                continue
            except Exception:
                logger.exception("supervisor: check failed")
                continue
            if failing:
                logger.info("supervisor: the database answers again")
                failing = False

    # --- the turns members here watch ---------------------------------------------------------------------------

    async def check_watched(self) -> None:
        mine = self.runner.live_ids()
        watched = {
            log.message_id
            for hub in self.fanout.hubs.values()
            for log in hub.logs.values()
            if not log.finished and log.message_id not in mine
        }
        if not watched:
            return
        states = await db(selectors.turn_states)(message_ids=sorted(watched))
        now = timezone.now()
        lapsed: list[selectors.TurnState] = []
        for message_id in watched:
            state = states.get(message_id)
            if state is None:  # deleted with its conversation: nothing more will come
                for hub in self.fanout.hubs.values():
                    hub.logs.pop(message_id, None)
                continue
            if state.status != Message.Status.STREAMING:
                if state.completed_at is None or (now - state.completed_at).total_seconds() >= END_GRACE:
                    await self._deliver_saved(message_id)
            elif state.lease_expires_at is None or state.lease_expires_at < now:
                lapsed.append(state)
        await asyncio.gather(*(self.end_if_dead(state) for state in lapsed))

    # --- every process's leftovers -----------------------------------------------------------------------------

    async def sweep(self) -> None:
        lapsed = await db(selectors.turns_lapsed)()
        await asyncio.gather(*(self.end_if_dead(state) for state in lapsed))  # each may wait for a ping
        for conversation_id in await db(selectors.conversations_waiting)(older_than_seconds=QUEUE_MIN_AGE):
            started = await self.runner.start_next(conversation_id=conversation_id)
            if started is not None:
                logger.info("supervisor: answering queued question in conversation %s", conversation_id)

    async def end_if_dead(self, state: selectors.TurnState) -> bool:
        """End a lapsed turn whose process does not answer. Returns whether this call ended it."""
        if state.message_id in self.runner.live_ids():
            return False  # ours and alive: our lease timer is only behind (database trouble)
        alive = await self.runner_alive(state.runner, state.message_id)
        if alive is not False:
            return False  # alive, or unknown because the channel layer is down: wait
        ended = await db(services.turn_interrupt_if_lapsed)(message_id=state.message_id)
        if ended is None:
            return False  # renewed meanwhile, or another process ended it
        logger.warning(
            "turn %s: its process (%s) is gone; ended as interrupted with %d saved characters",
            state.message_id,
            state.runner,
            len(ended.content),
        )
        payload = await self._payload(state.message_id)
        if payload is not None:
            message = {
                "type": "room.saved_end",
                "message_id": state.message_id,
                "conversation_id": state.conversation_id,
                "origin": state.runner,
                "message": payload,
            }
            room_id = ended.conversation.room_id
            hub = self.fanout.hubs.get(room_id)
            if hub is not None:
                await hub.end_from_saved(hub.log_for(message), payload)  # members here at once, even without Redis
            try:
                await self.fanout.publish(room_id, message)
            except Exception:  # other processes find it in the database
                logger.info("turn %s: could not publish its end; other processes read it", state.message_id)
        await self.runner.start_next(conversation_id=state.conversation_id)
        return True

    async def runner_alive(self, channel: str, message_id: int) -> bool | None:
        """Whether the process at `channel` still runs the turn: True, False (no answer in PING_TIMEOUT: dead),
        or None when the channel layer cannot carry the question."""
        if not channel:
            return False
        if channel == self.runner.channel:
            return message_id in self.runner.live_ids()
        nonce = uuid.uuid4().hex
        pong: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pongs[nonce] = pong
        try:
            await self.fanout.layer.send(
                channel,
                {
                    "type": "turn.ping",
                    "message_id": message_id,
                    "reply_to": self.fanout.process_channel,
                    "nonce": nonce,
                },
            )
            return await asyncio.wait_for(pong, PING_TIMEOUT)
        except TimeoutError:
            return False
        except Exception as exc:
            self.fanout.layer_failed(exc)
            return None
        finally:
            self._pongs.pop(nonce, None)

    async def _on_pong(self, message: dict[str, Any]) -> None:
        pong = self._pongs.get(message["nonce"])
        if pong is not None and not pong.done():
            pong.set_result(bool(message["alive"]))

    async def _deliver_saved(self, message_id: int) -> None:
        """A turn the database has finished whose end never reached this process: end it from the saved message."""
        payload = await self._payload(message_id)
        if payload is None:
            return
        for hub in list(self.fanout.hubs.values()):
            log = hub.logs.get(message_id)
            if log is not None and not log.finished:
                logger.info("turn %s: its end did not arrive; ending it from the saved message", message_id)
                await hub.end_from_saved(log, payload)

    async def _payload(self, message_id: int) -> events.MessagePayload | None:
        def build() -> events.MessagePayload | None:
            message = selectors.message_for_room(message_id=message_id)
            if message is None:
                return None
            return events.message_payload(message, message.conversation.room.slug)

        return await db(build)()
