"""Runs the rooms' turns: one task per turn, owned by this process's runner, never by a socket.

A consumer saves the question and asks for the conversation's next turn (`TurnRunner.start_next`: questions sent
while an answer streams wait in the database, oldest first). The task builds the turn with `turns.prepare_turn`
(room settings snapshot, history with speakers named, retrieval under the room's filter), streams it with
`turns.stream_turn`, numbers and coalesces deltas into frames, renders each completed Markdown block once, and
publishes through `fanout`. At the end it saves text, citations, usage and timings in one write, publishes the
final message and starts the conversation's next queued question. The only publisher of deltas. Imports no
consumers.

Faults (docs/rooms.md): a timer independent of frames renews every running turn's lease and checkpoints its text
(`CHAT_TURN_CHECKPOINT_SECONDS`), so a silent model keeps its lease and a killed process loses about a second of
text; frames wait in a per-turn outbox while the channel layer is down and go out in order once it is back; the
final save is retried with backoff while the text stays in memory (`CHAT_TURN_SAVE_RETRY_SECONDS`); SIGTERM under
Daphne drains (`install_shutdown_drain`). Turns whose process died are ended by `recovery.Supervisor`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from .. import errors, selectors, services, turns
from ..message_html import QUOTE_MAX_CHARS, file_url
from ..models import Conversation, Message
from ..monitoring import metrics
from ..providers import base as provider_base
from ..rendering import render_markdown, stable_boundary
from . import events, recovery
from .coalescer import Coalescer
from .fanout import LOG_KEEP_SECONDS, RETRY_FIRST, Fanout, fanout, instances

logger = logging.getLogger(__name__)

db = database_sync_to_async

# A turn's phases: only a preparing or streaming turn can be stopped; a saving one is finishing its final write.
PREPARING, STREAMING, SAVING, DONE = "preparing", "streaming", "saving", "done"
SHUTDOWN_ERROR = "The server restarted during this answer; the text so far is kept."
TITLE_TIMEOUT = 20.0  # seconds the model may take to name a conversation before a derived title is used
PUBLISH_GIVE_UP_SECONDS = LOG_KEEP_SECONDS  # after this, members are ended from the database by their processes


@dataclass
class RunningTurn:
    message_id: int
    conversation_id: int
    room_id: int
    room_slug: str
    task: asyncio.Task[None] | None = None
    pieces: list[tuple[int, str, str, int]] = field(default_factory=list)  # (seq, text, html, html_upto)
    end_seq: int | None = None
    end_frame: str | None = None
    start_frame: str | None = None
    phase: str = PREPARING
    cancel_requested: bool = False  # a member pressed stop
    shutdown: bool = False  # stopped because this process is shutting down
    lost: bool = False  # another process ended it (its lease lapsed while this process could not renew it)
    stream: _Stream | None = None
    saved_seq: int = 0  # the seq of the last checkpoint written
    publisher: _Publisher | None = None


class _Publisher:
    """One turn's layer messages, published in order by one task. While the channel layer is unreachable they
    wait here (the turn goes on streaming and saving) and go out once it is back; hubs that lost some fetch them from
    `TurnRunner.turn_log`. After PUBLISH_GIVE_UP_SECONDS the rest is dropped: members' processes end the turn from
    the database (`recovery`)."""

    def __init__(self, runner: TurnRunner, turn: RunningTurn) -> None:
        self.runner = runner
        self.turn = turn
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.task = asyncio.ensure_future(self._run())

    def put(self, message: dict[str, Any]) -> None:
        self.queue.put_nowait(message)

    def close(self) -> None:
        self.queue.put_nowait(None)

    async def _run(self) -> None:
        failing_since: float | None = None
        while True:
            message = await self.queue.get()
            if message is None:
                return
            delay = RETRY_FIRST
            while True:
                try:
                    await self.runner._publish(self.turn, message)
                    break
                except Exception:
                    now = time.monotonic()
                    if failing_since is None:
                        failing_since = now
                        logger.warning(
                            "turn %s: channel layer unreachable; its frames wait until it is back", self.turn.message_id
                        )
                    elif now - failing_since > PUBLISH_GIVE_UP_SECONDS:
                        logger.error(
                            "turn %s: channel layer unreachable for %.0f s; members are ended from the database",
                            self.turn.message_id,
                            now - failing_since,
                        )
                        return
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 1.0)
            if failing_since is not None:
                logger.info(
                    "turn %s: publishing again after %.1f s", self.turn.message_id, time.monotonic() - failing_since
                )
                failing_since = None


class TurnRunner:
    """This process's turns. Answers `turn.cancel`, `turn.replay` and `turn.ping` sent to its channel."""

    def __init__(self, hub_manager: Fanout) -> None:
        self.fanout = hub_manager
        self.turns: dict[int, RunningTurn] = {}
        self.channel = ""
        self.draining = False
        self.supervisor: recovery.Supervisor | None = None
        self._ready = asyncio.Lock()
        self._background: list[asyncio.Task[None]] = []
        self._titles: set[asyncio.Future[None]] = set()

    async def ensure_channel(self) -> str:
        async with self._ready:
            if not self.channel:
                self.channel = await self.fanout.ensure_started()
                self.fanout.turn_log_source = self.turn_log
                self.fanout.handlers.update(
                    {"turn.cancel": self._on_cancel, "turn.replay": self._on_replay, "turn.ping": self._on_ping}
                )
                self._background.append(asyncio.ensure_future(self._renew_leases()))
                self.supervisor = recovery.Supervisor(self)
                self._background.append(self.supervisor.start())
        return self.channel

    # --- messages from other processes ------------------------------------------------------------------------

    async def _on_cancel(self, message: dict[str, Any]) -> None:
        await self.cancel(message["message_id"])

    async def _on_replay(self, message: dict[str, Any]) -> None:
        reply = self.turn_log(message["message_id"]) or {"known": False, "pieces": [], "end_seq": None}
        reply = {"type": "room.backfill", "message_id": message["message_id"], **reply}
        await self.fanout.layer.send(message["reply_to"], reply)

    async def _on_ping(self, message: dict[str, Any]) -> None:
        """Another process found this turn's lease lapsed: say whether it still runs here (then it is only this
        process's database writes that fail, and the turn must not be ended)."""
        alive = message["message_id"] in self.live_ids()
        reply = {"type": "turn.pong", "nonce": message["nonce"], "alive": alive}
        await self.fanout.layer.send(message["reply_to"], reply)

    def turn_log(self, message_id: int) -> dict[str, Any] | None:
        turn = self.turns.get(message_id)
        if turn is None:
            return None
        return {
            "known": True,
            "pieces": list(turn.pieces),
            "start_frame": turn.start_frame,
            "end_seq": turn.end_seq,
            "end_frame": turn.end_frame,
        }

    def live_ids(self) -> set[int]:
        """Turns this process is still answering for (streaming, or saving their end)."""
        return {message_id for message_id, turn in self.turns.items() if turn.phase != DONE and not turn.lost}

    # --- starting and stopping turns --------------------------------------------------------------------------

    def start(self, *, message: Message, room_id: int | None = None, room_slug: str | None = None) -> RunningTurn:
        """Run the turn of a streaming assistant message just created for this runner (`turn_start_next`)."""
        if room_id is None or room_slug is None:
            room = message.conversation.room
            room_id, room_slug = room.pk, room.slug
        turn = RunningTurn(message.pk, message.conversation_id, room_id, room_slug)
        turn.publisher = _Publisher(self, turn)
        self.turns[message.pk] = turn
        turn.task = asyncio.ensure_future(self._run(turn, message))
        return turn

    async def start_next(self, *, conversation_id: int) -> RunningTurn | None:
        """Start the conversation's oldest queued question here, unless an answer streams there already or this
        process is shutting down (then another process's supervisor starts it)."""
        if self.draining:
            return None
        await self.ensure_channel()
        reply = await db(services.turn_start_next)(conversation_id=conversation_id, runner=self.channel)
        if reply is None:
            return None
        return self.start(message=reply)

    async def cancel(self, message_id: int) -> bool:
        turn = self.turns.get(message_id)
        if turn is None or turn.task is None or turn.task.done() or turn.phase not in (PREPARING, STREAMING):
            return False
        turn.cancel_requested = True
        turn.task.cancel()
        return True

    async def _publish(self, turn: RunningTurn, message: dict[str, Any]) -> None:
        message.update(message_id=turn.message_id, conversation_id=turn.conversation_id, origin=self.channel)
        await self.fanout.publish(turn.room_id, message)

    # --- one turn -------------------------------------------------------------------------------------------------

    async def _run(self, turn: RunningTurn, message: Message) -> None:
        assert turn.publisher is not None
        metrics.turn_started()
        stream = turn.stream = _Stream(self, turn)
        status, error_text = Message.Status.COMPLETE, ""
        result: turns.TurnResult | None = None
        prepared: turns.PreparedTurn | None = None
        try:
            payload = await db(events.message_payload)(message, turn.room_slug)
            turn.start_frame = events.encode(events.assistant_start(payload))
            turn.publisher.put({"type": "room.start", "frame": turn.start_frame})
            prepared = await db(_prepare)(turn.message_id)
            turn.phase = STREAMING
            async for item in turns.stream_turn(prepared):
                if isinstance(item, turns.TextDelta):
                    stream.add(item.text)
                elif isinstance(item, turns.CitationFound):
                    stream.add_citation(item.citation)
                else:
                    result = item
        except asyncio.CancelledError:
            if turn.cancel_requested:
                status = Message.Status.CANCELLED
            else:
                status = Message.Status.INTERRUPTED
                error_text = SHUTDOWN_ERROR if turn.shutdown else services.TURN_INTERRUPTED_ERROR
        except errors.ChatError as exc:
            status, error_text = Message.Status.FAILED, exc.message
        except provider_base.ProviderError as exc:
            status, error_text = Message.Status.FAILED, f"The model failed: {exc}"
        except Exception:
            logger.exception("turn %s failed", turn.message_id)
            status, error_text = Message.Status.FAILED, "The answer failed because of an error on the server."
        turn.phase = SAVING
        stream.close()
        metrics.turn_finished(status, stream.first_token_ms, (time.perf_counter() - stream.started) * 1000)
        if turn.lost:
            # Another process ended this turn (it could not see this one alive): members have its end already,
            # and a newer turn may be streaming in the conversation. Write nothing more.
            logger.warning("turn %s was ended by another process; dropping its end", turn.message_id)
            turn.phase = DONE
            turn.publisher.close()
            return
        try:
            saved = await self._save_final(turn, stream, status, error_text, result, prepared)
            turn.end_frame = events.encode(events.assistant_end(saved))
        except Exception:
            logger.exception("turn %s: could not save its end; members get the text it had", turn.message_id)
            if turn.start_frame is not None:
                turn.end_frame = events.encode(events.assistant_end(self._unsaved_end(turn, stream)))
        finally:
            turn.phase = DONE
        turn.end_seq = stream.seq
        if turn.end_frame is not None:  # else the supervisors end it from the database's checkpoint
            turn.publisher.put({"type": "room.end", "seq": stream.seq, "frame": turn.end_frame})
        turn.publisher.close()
        asyncio.get_running_loop().call_later(LOG_KEEP_SECONDS, self.turns.pop, turn.message_id, None)
        if status == Message.Status.COMPLETE and not turn.shutdown:
            task = asyncio.ensure_future(self._name_conversation(turn, prepared))
            self._titles.add(task)
            task.add_done_callback(self._titles.discard)
        try:
            await self.start_next(conversation_id=turn.conversation_id)
        except Exception:  # the supervisors answer the queue later
            logger.exception("turn %s: could not start the next queued question", turn.message_id)

    async def _name_conversation(self, turn: RunningTurn, prepared: turns.PreparedTurn | None) -> None:
        """After an answer, a conversation still unnamed gets a title: written by the room's model when it is a real
        provider model, else derived from the question. Never replaces a member's rename (one conditional update);
        everyone in the room gets `conversation.renamed`. Runs beside the next turn; a failure only logs."""
        try:
            question = await db(_unnamed_question)(turn.message_id)
            if question is None:
                return
            title = ""
            if prepared is not None and turns.writes_titles(prepared):
                try:
                    title = await asyncio.wait_for(turns.write_title(prepared, question), TITLE_TIMEOUT)
                except (provider_base.ProviderError, TimeoutError) as exc:
                    logger.info("turn %s: the model wrote no title (%s); deriving one", turn.message_id, exc)
            title = title or services.title_from_question(question)
            conversation = await db(services.conversation_title_auto)(conversation_id=turn.conversation_id, title=title)
            if conversation is not None:
                event = await db(events.conversation_event)("conversation.renamed", conversation)
                await self.fanout.publish_event(turn.room_id, event)
        except Exception:
            logger.warning("turn %s: could not name its conversation", turn.message_id, exc_info=True)

    async def _save_final(
        self,
        turn: RunningTurn,
        stream: _Stream,
        status: str,
        error_text: str,
        result: turns.TurnResult | None,
        prepared: turns.PreparedTurn | None,
    ) -> events.MessagePayload:
        """Save the end of the turn in one write, retried with backoff while the database is unreachable (the text
        stays in memory, and the lease is renewed once the database is back) for CHAT_TURN_SAVE_RETRY_SECONDS."""
        elapsed = (time.perf_counter() - stream.started) * 1000
        usage = result.usage if result else _usage_so_far(stream, prepared)
        fields = {
            "message_id": turn.message_id,
            "status": status,
            "content": stream.text,
            "citations": stream.citations_json(),
            "seq": stream.seq,
            "model": prepared.spec.id if prepared else "",
            "temperature": prepared.temperature_used if prepared else None,
            "finish_reason": result.finish_reason if result else "",
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "first_token_ms": stream.first_token_ms,
            "total_ms": elapsed,
            "error": error_text,
        }
        deadline = time.monotonic() + settings.CHAT_TURN_SAVE_RETRY_SECONDS
        delay = 0.25
        failures = 0
        while True:
            try:
                saved = await db(_save)(room_slug=turn.room_slug, **fields)
            except Exception as exc:
                failures += 1
                if time.monotonic() + delay > deadline:
                    raise
                if failures == 1:
                    logger.warning(
                        "turn %s: could not save its end (%s); retrying for up to %.0f s with the text in memory",
                        turn.message_id,
                        exc,
                        settings.CHAT_TURN_SAVE_RETRY_SECONDS,
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if failures:
                logger.info("turn %s: saved after %d failed attempt(s)", turn.message_id, failures)
            return saved

    def _unsaved_end(self, turn: RunningTurn, stream: _Stream) -> events.MessagePayload:
        """The end members get when the database stayed unreachable: the text they saw, marked interrupted (the
        database keeps the last checkpoint, and a supervisor ends it there once its lease lapses)."""
        assert turn.start_frame is not None
        payload: events.MessagePayload = json.loads(turn.start_frame)["message"]
        payload["content"] = stream.text
        payload["html"] = render_markdown(stream.text, stream._linker)
        payload["status"] = Message.Status.INTERRUPTED
        payload["seq"] = stream.seq
        payload["error"] = "The answer could not be saved (the database was unreachable); this is the text it had."
        return payload

    # --- leases and checkpoints -----------------------------------------------------------------------------------

    async def _renew_leases(self) -> None:
        """Every CHAT_TURN_CHECKPOINT_SECONDS, whatever the model does: renew every running turn's lease and save
        the text of those that grew, in one transaction. A turn the database no longer has streaming was ended by
        another process (this one could not renew it in time): it stops here, so no turn ever runs twice."""
        failing = False
        while True:
            await asyncio.sleep(settings.CHAT_TURN_CHECKPOINT_SECONDS)
            live = [turn for turn in self.turns.values() if turn.phase != DONE and not turn.lost]
            if not live:
                continue
            checkpoints: dict[int, tuple[str, int] | None] = {}
            for turn in live:
                stream = turn.stream
                grew = stream is not None and turn.phase == STREAMING and stream.seq > turn.saved_seq
                checkpoints[turn.message_id] = stream.published() if grew and stream is not None else None
            try:
                alive = await db(services.turns_renew)(checkpoints=checkpoints)
            except Exception as exc:
                if not failing:
                    logger.warning("could not renew %d turn lease(s): %s", len(live), exc)
                failing = True
                continue
            if failing:
                logger.info("turn leases renewed again")
                failing = False
            for turn in live:
                saved = checkpoints[turn.message_id]
                if turn.message_id in alive:
                    if saved is not None:
                        turn.saved_seq = saved[1]
                elif turn.phase in (PREPARING, STREAMING) and turn.task is not None:
                    logger.warning("turn %s was ended by another process (lease lapsed); stopping it", turn.message_id)
                    turn.lost = True
                    turn.task.cancel()

    def stop_background(self) -> None:
        for task in self._background:
            task.cancel()


class _Stream:
    """Numbers deltas and coalesces them into frames: the first text goes out at once (time to first token), later
    text at most once per window. Completed Markdown blocks are rendered once and sent with the frame."""

    def __init__(self, runner: TurnRunner, turn: RunningTurn) -> None:
        self.runner = runner
        self.turn = turn
        self.started = time.perf_counter()
        self.first_token_ms: float | None = None
        self.parts: list[str] = []
        self.coalescer = Coalescer(settings.CHAT_COALESCE_MS / 1000)
        self.seq = 0
        self.rendered_upto = 0
        self.citations: list[tuple[int, turns.Citation]] = []  # (position in the saved text, citation)
        self.files: dict[int, str] = {}  # inline number -> file id
        self.timer: asyncio.TimerHandle | None = None
        self.published_chars = 0  # the text members have been sent (checkpoints save this much, with `seq`)

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def published(self) -> tuple[str, int]:
        """The text up to the last frame sent, and that frame's seq: what a checkpoint saves."""
        return self.text[: self.published_chars], self.seq

    def token_count(self) -> int:
        from ..knowledge.chunking import count_tokens

        return count_tokens(self.text)

    def add(self, text: str) -> None:
        if not text:
            return
        if self.first_token_ms is None:
            self.first_token_ms = (time.perf_counter() - self.started) * 1000
        self.parts.append(text)
        if self.coalescer.add(text):
            self.flush()
        elif self.timer is None:
            due = self.coalescer.deadline() or time.monotonic()
            self.timer = asyncio.get_running_loop().call_later(max(0.0, due - time.monotonic()), self.flush)

    def add_citation(self, citation: turns.Citation) -> None:
        # The saved text keeps its inline markers, so the citation is placed where its marker starts in it (the
        # turn engine's position counts the text without markers, as the API's answers are given).
        self.citations.append((len(self.text), citation))
        for reference in citation.references:
            self.files.setdefault(reference.number, reference.file.file_id)
        self.add(citation.inline())

    def flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        text = self.coalescer.take()
        if not text:
            return
        self.seq += 1
        full = self.text
        html, html_upto = "", 0
        boundary = stable_boundary(full, self.rendered_upto)
        if boundary > self.rendered_upto:
            html = render_markdown(full[self.rendered_upto : boundary], self._linker)
            self.rendered_upto = html_upto = boundary
        event = events.assistant_delta(
            conversation_id=self.turn.conversation_id,
            message_id=self.turn.message_id,
            seq=self.seq,
            text=text,
            html=html,
            html_upto=html_upto,
        )
        self.turn.pieces.append((self.seq, text, html, html_upto))
        self.published_chars = len(full)
        assert self.turn.publisher is not None
        self.turn.publisher.put(
            {
                "type": "room.delta",
                "seq": self.seq,
                "text": text,
                "html": html,
                "html_upto": html_upto,
                "frame": events.encode(event),
            }
        )

    def _linker(self, number: int, page: int | None) -> tuple[str, str] | None:
        file_id = self.files.get(number)
        if file_id is None:
            return None
        return file_url(self.turn.room_slug, file_id, page), file_id

    def close(self) -> None:
        """Send what waits in the coalescer; nothing more is added after this."""
        self.flush()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def citations_json(self) -> list[dict[str, Any]]:
        return [
            {
                "position": position,
                "references": [
                    {
                        "number": reference.number,
                        "file_id": reference.file.file_id,
                        "file_name": reference.file.name,
                        "pages": list(reference.pages),
                        # The passage of the cited snippet that best supports the sentence (sources, popovers).
                        "quote": (reference.highlight or "")[:QUOTE_MAX_CHARS],
                    }
                    for reference in citation.references
                ],
            }
            for position, citation in self.citations
        ]


def _usage_so_far(stream: _Stream, prepared: turns.PreparedTurn | None) -> provider_base.Usage:
    """A stopped or failed turn's usage: what was streamed, and the prompt once the model has answered anything
    (it was read, and is billed, whether or not the answer ends)."""
    completion = stream.token_count()
    prompt = turns.prompt_tokens(prepared) if prepared is not None and completion else 0
    return provider_base.Usage(prompt_tokens=prompt, completion_tokens=completion)


def _prepare(message_id: int) -> turns.PreparedTurn:
    """The turn as the room is configured in this message's snapshot, with the conversation so far."""
    message = Message.objects.select_related("conversation__room__assistant").get(pk=message_id)
    room = message.conversation.room
    history = selectors.conversation_history(
        conversation_id=message.conversation_id, before_id=message.pk, limit=settings.CHAT_HISTORY_MESSAGES
    )
    said = [
        turns.TurnMessage(
            role=item.role,
            content=item.content,
            speaker=selectors.display_name(item.author) if item.role == Message.Role.USER else "",
        )
        for item in history
    ]
    metadata_filter = selectors.room_filter_parse(message.metadata_filter)
    return turns.prepare_turn(
        turns.TurnRequest(
            assistant=room.assistant,
            messages=said,
            model=message.model or None,
            temperature=message.temperature,
            metadata_filter=metadata_filter,
            extra_instructions=room.instructions,
            include_highlights=True,  # each reference keeps its quoted passage for the answer's sources
        )
    )


def _unnamed_question(message_id: int) -> str | None:
    """The question an answer replied to, when its conversation has no title yet (else None)."""
    message = Message.objects.select_related("conversation", "reply_to").get(pk=message_id)
    if message.conversation.title_source != Conversation.TitleSource.DEFAULT or message.reply_to is None:
        return None
    return message.reply_to.content


def _save(*, room_slug: str, **fields: Any) -> events.MessagePayload:
    saved = services.turn_finish(**fields)
    return events.message_payload(saved, room_slug)


_runners: weakref.WeakKeyDictionary[Fanout, TurnRunner] = weakref.WeakKeyDictionary()


async def runner() -> TurnRunner:
    """This process's runner (one per event loop, beside its fan-out), started with its lease timer and
    supervisor."""
    hubs = fanout()
    instance = _runners.get(hubs)
    if instance is None:
        instance = _runners[hubs] = TurnRunner(hubs)
    await instance.ensure_channel()
    return instance


async def cancel_turn(*, message: Message) -> bool:
    """Stop a turn wherever it runs: here directly, elsewhere through its process's channel."""
    local = await runner()
    if message.runner == local.channel:
        return await local.cancel(message.pk)
    if message.runner:
        await local.fanout.layer.send(message.runner, {"type": "turn.cancel", "message_id": message.pk})
        return True
    return False


async def drain(wait: float = 10.0) -> None:
    """Wait for this process's running turns to end and their frames to go out (tests, and a graceful stop)."""
    instance = _runners.get(fanout())
    if instance is None:
        return
    tasks = [turn.task for turn in instance.turns.values() if turn.task is not None and not turn.task.done()]
    if tasks:
        await asyncio.wait(tasks, timeout=wait)
    senders = [
        turn.publisher.task for turn in instance.turns.values() if turn.publisher and not turn.publisher.task.done()
    ]
    if senders:
        await asyncio.wait(senders, timeout=wait)
    if instance._titles:
        await asyncio.wait(list(instance._titles), timeout=wait)


def stop_background() -> None:
    """Tests: stop this loop's runner, supervisor and listeners (each test runs its own event loop)."""
    hubs = fanout()
    instance = _runners.get(hubs)
    if instance is not None:
        instance.stop_background()
    hubs.stop_background()


async def shutdown(grace: float) -> None:
    """Drain this process before it exits: close the room sockets (their clients reconnect, to another process
    behind a proxy), stop taking turns, let running turns finish for up to `grace` seconds, then stop the rest,
    each saved whole as `interrupted` and ended for members; wait for their end frames to go out."""
    started = time.monotonic()
    closed = 0
    for hubs in instances():
        hubs.draining = True
        closed += hubs.close_all_sockets(events.CLOSE_RESTARTING)
    running = []
    for instance in list(_runners.values()):
        instance.draining = True
        running += [turn for turn in instance.turns.values() if turn.task is not None and not turn.task.done()]
    logger.warning(
        "shutting down: closed %d room socket(s); %d answer(s) get up to %.0f s to finish", closed, len(running), grace
    )
    if running:
        _done, pending = await asyncio.wait([turn.task for turn in running if turn.task], timeout=grace)
        for turn in running:
            if turn.task in pending and turn.phase in (PREPARING, STREAMING):
                turn.shutdown = True
                turn.task.cancel()
        await asyncio.wait([turn.task for turn in running if turn.task], timeout=settings.CHAT_TURN_SAVE_RETRY_SECONDS)
        senders = [turn.publisher.task for turn in running if turn.publisher is not None]
        await asyncio.wait(senders, timeout=10.0)
    logger.warning("shutdown drained in %.1f s", time.monotonic() - started)


def install_shutdown_drain() -> None:
    """Under Daphne, drain on SIGTERM/SIGINT before the process exits. Daphne runs on Twisted's asyncio reactor,
    whose signal handlers stop the reactor; a "before shutdown" trigger that returns a Deferred holds the reactor
    until it fires. Installed when the ASGI application is imported, i.e. before Daphne's own trigger (which
    cancels every connection's application), so sockets are closed with 4012 first. Elsewhere (tests, other
    servers) it does nothing."""
    reactor = sys.modules.get("twisted.internet.reactor")
    loop = getattr(reactor, "_asyncioEventloop", None)
    if reactor is None or loop is None or getattr(reactor, "_chat_drain_installed", False):
        return

    def drain_before_shutdown() -> Any:
        from twisted.internet import defer

        future = asyncio.ensure_future(shutdown(settings.CHAT_DRAIN_SECONDS), loop=loop)
        return defer.Deferred.fromFuture(future)

    reactor.addSystemEventTrigger("before", "shutdown", drain_before_shutdown)  # type: ignore[attr-defined]
    reactor._chat_drain_installed = True  # type: ignore[attr-defined]
