"""The room websocket consumer: authorise, parse, delegate, relay. No ORM and no HTTP here.

Every frame is checked against the protocol (`events.parse_client_frame`) and the member's access is checked again
with a fresh read of the session, the user and the room (`access.authorise`); access changes that happen between
frames (a member removed, a logout, a deactivation) reach the socket through its hub (`recheck_access`) and close
it. Writes go through `services`, turns through `turn_runner`, and everything the room sees goes out through
`fanout`. The consumer never awaits a model: a consumer handles one event at a time, and a 40 s stream would block
its own stop button. A frame that fails on a passing fault (database, channel layer) gets an `error` with
`retryable`, and the socket stays open; however the consumer ends, its socket leaves the hub.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.db import DatabaseError

from .. import errors, selectors, services
from ..models import Message
from . import access, events, limits, turn_runner
from .fanout import RoomHub, fanout

logger = logging.getLogger(__name__)

ERROR_CODES: dict[type[errors.ChatError], str] = {
    errors.RateLimited: "rate_limited",
    errors.PayloadTooLarge: "too_large",
    errors.NotFound: "not_found",
    errors.PermissionDenied: "forbidden",
}
UNAVAILABLE = "The server could not do that just now (a database or network fault); try again in a moment."

db = database_sync_to_async


class RoomConsumer(AsyncWebsocketConsumer):
    # Sockets get no layer channel of their own: the room's hub holds one per process and writes to us directly.
    channel_layer_alias = "__room_sockets_use_hubs__"

    hub: RoomHub | None = None
    _typing_at = float("-inf")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # However the consumer ends (a close, a failure, cancellation at shutdown), the socket leaves its hub:
            # a socket that is gone is never listed in presence nor kept as the reason a hub stays up.
            await asyncio.shield(self._leave())

    async def dispatch(self, message: dict[str, Any]) -> None:
        try:
            await super().dispatch(message)
        except StopConsumer:
            raise
        except Exception:
            logger.exception("room socket: %s failed", message.get("type"))
            if message.get("type") == "websocket.connect":
                await self.close(code=1011)  # before accept: the handshake fails and the client retries
            elif message.get("type") == "websocket.receive" and self.hub is not None:
                await self.send_event(events.error("unavailable", UNAVAILABLE, retryable=True))

    async def connect(self) -> None:
        self.channel_name = f"socket-{uuid.uuid4().hex}"
        self.user = self.scope.get("user")
        slug = self.scope["url_route"]["kwargs"]["slug"]
        if fanout().draining:
            await self.close(code=events.CLOSE_RESTARTING)  # this process is shutting down: try another
            return
        try:
            room = await db(selectors.room_get_for_user)(user=self.user, slug=slug)
        except errors.ChatError:
            await self.close(code=events.CLOSE_NO_ACCESS)  # before accept: refused, strangers learn nothing
            return
        self.room_id, self.room_slug = room.pk, room.slug
        self.user_id: int = self.user.pk  # type: ignore[union-attr]
        if not await limits.admit(self):  # over the per-member socket cap: told why, then closed
            return
        await self.accept()
        await turn_runner.runner()  # this process's runner and supervisor, which also answer queued questions
        self.hub = await fanout().join(self.room_id, self)
        # Who is here as last announced; the hub's next presence frame (batched) includes this member. No query:
        # a mass join must not queue one per socket.
        await self.send_event(events.room_joined(room, selectors.display_name(self.user), self.hub.presence_names))
        await self.hub.greet(self)

    async def disconnect(self, code: int) -> None:
        await self._leave()

    async def _leave(self) -> None:
        limits.release(self)  # however the socket ends, its slot is free again
        if self.hub is not None:
            self.hub = None
            await fanout().leave(self.room_id, self)

    async def send_event(self, event: Any) -> None:
        await self.send(text_data=events.encode(event))

    async def recheck_access(self, ended_sessions: frozenset[str] = frozenset()) -> None:
        """Called by the hub when access may have changed: close this socket if its member lost it (at once when its
        session is one that just ended)."""
        if self.hub is None:
            return
        if access.session_key(self.scope) in ended_sessions:
            await self._refuse(errors.Unauthenticated("You are signed out."))
            return
        try:
            self.user = (await db(access.authorise)(scope=self.scope, user=self.user, room_id=self.room_id))[0]
        except errors.ChatError as exc:
            await self._refuse(exc)
        except Exception as exc:  # cannot tell now (database down): the next frame or change checks again
            logger.warning("room socket: could not recheck access: %s", exc)

    async def _refuse(self, exc: errors.ChatError, ref: str = "") -> None:
        if isinstance(exc, errors.Unauthenticated):
            await self.send_event(events.error("signed_out", "You are signed out; sign in again.", ref=ref))
            await self.close(code=events.CLOSE_SIGNED_OUT)
        else:
            await self.send_event(events.error("forbidden", "You are no longer a member of this room.", ref=ref))
            await self.close(code=events.CLOSE_NO_ACCESS)
        await self._leave()  # at once: nothing more is written to it, even before the close completes

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            frame = events.parse_client_frame(text_data)
        except events.FrameError as exc:
            await self.send_event(events.error(exc.code, exc.message))
            return
        kind = frame["type"]
        client_id = str(frame.get("client_id", ""))
        try:
            self.user, room = await db(access.authorise)(scope=self.scope, user=self.user, room_id=self.room_id)
        except errors.ChatError as exc:
            await self._refuse(exc, ref=kind)
            return
        except DatabaseError as exc:  # the database is unreachable: say so, keep the socket
            logger.warning("room socket: could not check access for %s: %s", kind, exc)
            await self.send_event(
                events.error("unavailable", UNAVAILABLE, ref=kind, client_id=client_id, retryable=True)
            )
            return
        try:
            await getattr(self, kind.replace(".", "_"))(frame, room)
        except errors.ChatError as exc:
            code = ERROR_CODES.get(type(exc), "invalid_argument")
            await self.send_event(events.error(code, exc.message, ref=kind, client_id=client_id))
        except DatabaseError as exc:
            logger.warning("room socket: %s failed: %s", kind, exc)
            await self.send_event(
                events.error("unavailable", UNAVAILABLE, ref=kind, client_id=client_id, retryable=True)
            )
        except Exception:
            logger.exception("room socket: %s failed", kind)
            await self.send_event(
                events.error("unavailable", UNAVAILABLE, ref=kind, client_id=client_id, retryable=True)
            )

    # --- client intents, one handler each ---------------------------------------------------------------------

    async def message_send(self, frame: events.MessageSend, room: Any) -> None:
        conversation = await db(selectors.conversation_get_for_user)(
            user=self.user, conversation_id=frame["conversation_id"], room=room
        )
        message = await db(services.message_send)(
            conversation=conversation, author=self.user, content=frame["content"], client_id=frame.get("client_id", "")
        )
        payload = await db(events.message_payload)(message, self.room_slug)
        await self._publish(events.chat_message(payload, frame.get("client_id", "")))
        if message.status == Message.Status.QUEUED:
            await self._start_next(conversation.pk, message.pk)

    async def turn_cancel(self, frame: events.TurnCancel, room: Any) -> None:
        message = await db(selectors.message_get_for_user)(user=self.user, message_id=frame["message_id"], room=room)
        await db(services.turn_stop_request)(message=message, user=self.user)  # who may stop; records who did
        await turn_runner.cancel_turn(message=message)

    async def message_regenerate(self, frame: events.MessageRegenerate, room: Any) -> None:
        message = await db(selectors.message_get_for_user)(user=self.user, message_id=frame["message_id"], room=room)
        question = await db(services.message_regenerate)(message=message, user=self.user)
        payload = await db(events.message_payload)(question, self.room_slug)
        await self._publish(events.message_updated(payload))
        await self._start_next(question.conversation_id, question.pk)

    async def message_edit(self, frame: events.MessageEdit, room: Any) -> None:
        message = await db(selectors.message_get_for_user)(user=self.user, message_id=frame["message_id"], room=room)
        edited = await db(services.message_edit)(
            message=message, author=self.user, content=frame["content"], client_id=frame.get("client_id", "")
        )
        payload = await db(events.message_payload)(edited, self.room_slug)
        await self._publish(events.chat_message(payload, frame.get("client_id", "")))
        if edited.status == Message.Status.QUEUED:
            await self._start_next(edited.conversation_id, edited.pk)

    async def feedback_set(self, frame: events.FeedbackSet, room: Any) -> None:
        message = await db(selectors.message_get_for_user)(user=self.user, message_id=frame["message_id"], room=room)
        vote = await db(services.feedback_set)(
            message=message, user=self.user, value=frame["value"], comment=frame.get("comment", "")
        )
        counts = (await db(selectors.feedback_counts)(message_ids=[message.pk]))[message.pk]
        await self.send_event(
            events.feedback_mine(
                message_id=message.pk, value=vote.value if vote else None, comment=vote.comment if vote else ""
            )
        )
        await self._publish(
            events.feedback_updated(conversation_id=message.conversation_id, message_id=message.pk, counts=counts)
        )

    async def typing_notify(self, frame: events.TypingNotify, room: Any) -> None:
        # Not stored, and at most one event per TYPING_INTERVAL per socket: extra frames are dropped quietly.
        now = asyncio.get_running_loop().time()
        if now - self._typing_at < events.TYPING_INTERVAL:
            return
        self._typing_at = now
        conversation = await db(selectors.conversation_get_for_user)(
            user=self.user, conversation_id=frame["conversation_id"], room=room
        )
        name = selectors.display_name(self.user)
        await self._publish(events.member_typing(conversation_id=conversation.pk, user=name, user_id=self.user_id))

    async def conversation_archive(self, frame: events.ConversationArchive, room: Any) -> None:
        conversation = await db(selectors.conversation_get_for_user)(
            user=self.user, conversation_id=frame["conversation_id"], room=room
        )
        conversation = await db(services.conversation_archive)(
            conversation=conversation, user=self.user, archived=frame["archived"]
        )
        await self._publish(await db(events.conversation_event)("conversation.archived", conversation))

    async def _start_next(self, conversation_id: int, message_id: int) -> None:
        try:
            await (await turn_runner.runner()).start_next(conversation_id=conversation_id)
        except Exception:  # saved and queued: a supervisor starts it
            logger.warning("room socket: could not start the turn for message %s now", message_id, exc_info=True)

    async def turn_resume(self, frame: events.TurnResume, room: Any) -> None:
        message = await db(selectors.message_get_for_user)(user=self.user, message_id=frame["message_id"], room=room)
        if message.role != Message.Role.ASSISTANT:
            raise errors.InvalidArgument("Only an answer can be resumed.")
        await self._resume(message, frame["last_seq"], frame.get("chars"))

    async def conversation_sync(self, frame: events.ConversationSync, room: Any) -> None:
        conversation = await db(selectors.conversation_get_for_user)(
            user=self.user, conversation_id=frame["conversation_id"], room=room
        )
        for message in await db(selectors.conversation_messages)(conversation=conversation, after_id=frame["after_id"]):
            payload = await db(events.message_payload)(message, self.room_slug)
            if message.role == Message.Role.USER:
                await self.send_event(events.chat_message(payload))
            elif message.status == Message.Status.STREAMING:
                await self.send_event(events.assistant_start(payload))
                await self._resume(message, 0)
            elif self.hub is not None:
                await self.hub.deliver_saved(self, payload)

    async def conversation_create(self, frame: events.ConversationCreate, room: Any) -> None:
        conversation = await db(services.conversation_create)(room=room, user=self.user, title=frame.get("title"))
        event = await db(events.conversation_event)("conversation.created", conversation, frame.get("client_id", ""))
        await self._publish(event)

    async def conversation_rename(self, frame: events.ConversationRename, room: Any) -> None:
        conversation = await db(selectors.conversation_get_for_user)(
            user=self.user, conversation_id=frame["conversation_id"], room=room
        )
        conversation = await db(services.conversation_rename)(
            conversation=conversation, title=frame["title"], user=self.user
        )
        event = await db(events.conversation_event)("conversation.renamed", conversation)
        await self._publish(event)

    async def _publish(self, event: Any) -> None:
        """Send an event to the whole room. While the channel layer is down the change is saved and the sender gets
        it directly; the others' hubs tell their sockets to re-sync once the layer is back."""
        try:
            await fanout().publish_event(self.room_id, event)
        except Exception:
            await self.send_event(event)

    async def _resume(self, message: Message, last_seq: int, chars: int | None = None) -> None:
        """Exactly the text after `last_seq`, once: from the live turn when there is one (here or on the process
        running it), else the saved message. A turn whose process died is ended for this socket by the supervisor."""
        if self.hub is None:
            return
        saved = None
        if message.status != Message.Status.STREAMING:
            saved = await db(events.message_payload)(message, self.room_slug)
        await self.hub.resume(
            self,
            message_id=message.pk,
            last_seq=last_seq,
            origin=message.runner,
            conversation_id=message.conversation_id,
            saved=saved,
            chars=chars,
        )
