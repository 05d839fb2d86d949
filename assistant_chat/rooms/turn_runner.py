"""Runs the rooms' turns: one task per turn, owned by this process's runner, never by a socket.

A consumer saves the question and calls `start_turn`; the task builds the turn with `turns.prepare_turn` (room
settings snapshot, history with speakers named, retrieval under the room's filter), streams it with
`turns.stream_turn`, numbers and coalesces deltas into frames, renders each completed Markdown block once, and
publishes through `fanout`. At the end it saves text, citations, usage and timings in one write and publishes the
final message. `cancel_turn` closes the upstream stream and keeps the partial text. The only publisher of deltas.
Imports no consumers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from .. import errors, selectors, services, turns
from ..message_html import file_url
from ..models import Message
from ..monitoring import metrics
from ..providers import base as provider_base
from ..rendering import render_markdown, stable_boundary
from . import events
from .coalescer import Coalescer
from .fanout import LOG_KEEP_SECONDS, Fanout, fanout

logger = logging.getLogger(__name__)


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
    cancel_requested: bool = False


class TurnRunner:
    """This process's turns. Answers `turn.cancel` and `turn.replay` sent to its channel from other processes."""

    def __init__(self, hub_manager: Fanout) -> None:
        self.fanout = hub_manager
        self.turns: dict[int, RunningTurn] = {}
        self.channel = ""
        self._listener: asyncio.Task[None] | None = None
        self._ready = asyncio.Lock()

    async def ensure_channel(self) -> str:
        async with self._ready:
            if not self.channel:
                self.channel = await self.fanout.layer.new_channel()
                self.fanout.runner_channel = self.channel
                self.fanout.turn_log_source = self.turn_log
                self._listener = asyncio.ensure_future(self._listen())
        return self.channel

    async def _listen(self) -> None:
        while True:
            try:
                message = await self.fanout.layer.receive(self.channel)
            except Exception:  # a Redis hiccup must not stop this process answering stop requests
                metrics.channel_layer_error("receive")
                logger.exception("turn runner: channel layer receive failed; retrying")
                await asyncio.sleep(0.5)
                continue
            try:
                if message["type"] == "turn.cancel":
                    await self.cancel(message["message_id"])
                elif message["type"] == "turn.replay":
                    reply = self.turn_log(message["message_id"]) or {"pieces": [], "end_seq": None, "end_frame": None}
                    reply = {"type": "room.backfill", "message_id": message["message_id"], **reply}
                    await self.fanout.layer.send(message["reply_to"], reply)
            except Exception:
                logger.exception("turn runner could not handle %s", message.get("type"))

    def turn_log(self, message_id: int) -> dict[str, Any] | None:
        turn = self.turns.get(message_id)
        if turn is None:
            return None
        return {
            "pieces": list(turn.pieces),
            "start_frame": turn.start_frame,
            "end_seq": turn.end_seq,
            "end_frame": turn.end_frame,
        }

    def start(self, *, message: Message, room_id: int, room_slug: str) -> RunningTurn:
        turn = RunningTurn(message.pk, message.conversation_id, room_id, room_slug)
        self.turns[message.pk] = turn
        turn.task = asyncio.ensure_future(self._run(turn, message))
        return turn

    async def cancel(self, message_id: int) -> bool:
        turn = self.turns.get(message_id)
        if turn is None or turn.task is None or turn.task.done():
            return False
        turn.cancel_requested = True
        turn.task.cancel()
        return True

    async def _publish(self, turn: RunningTurn, message: dict[str, Any]) -> None:
        message.update(message_id=turn.message_id, conversation_id=turn.conversation_id, origin=self.channel)
        await self.fanout.publish(turn.room_id, message)

    async def _run(self, turn: RunningTurn, message: Message) -> None:
        metrics.turn_started()
        payload = await database_sync_to_async(events.message_payload)(message, turn.room_slug)
        turn.start_frame = events.encode(events.assistant_start(payload))
        await self._publish(turn, {"type": "room.start", "frame": turn.start_frame})
        stream = _Stream(self, turn)
        status, error_text = Message.Status.COMPLETE, ""
        result: turns.TurnResult | None = None
        prepared: turns.PreparedTurn | None = None
        try:
            prepared = await database_sync_to_async(_prepare)(turn.message_id)
            async for item in turns.stream_turn(prepared):
                if isinstance(item, turns.TextDelta):
                    stream.add(item.text)
                elif isinstance(item, turns.CitationFound):
                    stream.add_citation(item.citation)
                else:
                    result = item
        except asyncio.CancelledError:
            status = Message.Status.CANCELLED if turn.cancel_requested else Message.Status.INTERRUPTED
            if not turn.cancel_requested:
                error_text = "The server stopped during this answer."
        except errors.ChatError as exc:
            status, error_text = Message.Status.FAILED, exc.message
        except provider_base.ProviderError as exc:
            status, error_text = Message.Status.FAILED, f"The model failed: {exc}"
        except Exception:
            logger.exception("turn %s failed", turn.message_id)
            status, error_text = Message.Status.FAILED, "The answer failed because of an error on the server."
        await stream.close()
        metrics.turn_finished(status, stream.first_token_ms, (time.perf_counter() - stream.started) * 1000)
        try:
            await self._finish(turn, stream, status, error_text, result, prepared)
        except Exception:
            # Saving failed (database down?): members still get an end, so no client waits forever.
            logger.exception("turn %s: could not save its end", turn.message_id)
            end = events.error("turn_not_saved", "The answer could not be saved; reload to see the conversation.")
            await self._publish(turn, {"type": "room.end", "seq": stream.seq, "frame": events.encode(end)})

    async def _finish(
        self,
        turn: RunningTurn,
        stream: _Stream,
        status: str,
        error_text: str,
        result: turns.TurnResult | None,
        prepared: turns.PreparedTurn | None,
    ) -> None:
        elapsed = (time.perf_counter() - stream.started) * 1000
        usage = result.usage if result else _usage_so_far(stream, prepared)
        saved = await database_sync_to_async(_save)(
            message_id=turn.message_id,
            status=status,
            content=stream.text,
            citations=stream.citations_json(),
            seq=stream.seq,
            model=prepared.spec.id if prepared else "",
            temperature=prepared.temperature_used if prepared else None,
            finish_reason=result.finish_reason if result else "",
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            first_token_ms=stream.first_token_ms,
            total_ms=elapsed,
            error=error_text,
            room_slug=turn.room_slug,
        )
        turn.end_seq = stream.seq
        turn.end_frame = events.encode(events.assistant_end(saved))
        await self._publish(turn, {"type": "room.end", "seq": stream.seq, "frame": turn.end_frame})
        asyncio.get_running_loop().call_later(LOG_KEEP_SECONDS, self.turns.pop, turn.message_id, None)


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
        self.outbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.sender = asyncio.ensure_future(self._send())
        self.last_checkpoint = time.monotonic()
        self.checkpoint_every = max(1.0, settings.CHAT_TURN_LEASE_SECONDS / 3)

    @property
    def text(self) -> str:
        return "".join(self.parts)

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
        self.outbox.put_nowait(
            {
                "type": "room.delta",
                "seq": self.seq,
                "text": text,
                "html": html,
                "html_upto": html_upto,
                "frame": events.encode(event),
            }
        )
        now = time.monotonic()
        if now - self.last_checkpoint >= self.checkpoint_every:
            self.last_checkpoint = now
            self.outbox.put_nowait({"type": "checkpoint", "content": full, "seq": self.seq})

    def _linker(self, number: int, page: int | None) -> tuple[str, str] | None:
        file_id = self.files.get(number)
        if file_id is None:
            return None
        return file_url(self.turn.room_slug, file_id, page), file_id

    async def _send(self) -> None:
        """Publishes frames in order without holding up the model stream."""
        while True:
            message = await self.outbox.get()
            if message is None:
                return
            try:
                if message["type"] == "checkpoint":
                    await database_sync_to_async(services.turn_checkpoint)(
                        message_id=self.turn.message_id, content=message["content"], seq=message["seq"]
                    )
                else:
                    await self.runner._publish(self.turn, message)
            except Exception:
                metrics.turn_send_failed(message["type"])
                logger.exception("turn %s: could not publish a frame", self.turn.message_id)

    async def close(self) -> None:
        self.flush()
        self.outbox.put_nowait(None)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(self.sender)

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
        )
    )


def _save(*, room_slug: str, **fields: Any) -> events.MessagePayload:
    saved = services.turn_finish(**fields)
    return events.message_payload(saved, room_slug)


_runners: weakref.WeakKeyDictionary[Fanout, TurnRunner] = weakref.WeakKeyDictionary()


async def runner() -> TurnRunner:
    """This process's runner (one per event loop, beside its fan-out)."""
    hubs = fanout()
    instance = _runners.get(hubs)
    if instance is None:
        instance = _runners[hubs] = TurnRunner(hubs)
    await instance.ensure_channel()
    return instance


async def start_turn(*, message: Message, room_id: int, room_slug: str) -> RunningTurn:
    return (await runner()).start(message=message, room_id=room_id, room_slug=room_slug)


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
    """Wait for this process's running turns to end (tests, and a graceful stop)."""
    hubs = fanout()
    instance = _runners.get(hubs)
    if instance is None:
        return
    tasks = [turn.task for turn in instance.turns.values() if turn.task is not None and not turn.task.done()]
    if tasks:
        await asyncio.wait(tasks, timeout=wait)
