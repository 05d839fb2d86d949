"""The room websocket consumer: authorise, parse, delegate, relay. No ORM and no HTTP here.

Every frame is checked against the protocol (`events.parse_client_frame`) and the member's access is checked again
through the selectors' door (a member removed from a room is cut off at their next frame). Writes go through
`services`, turns through `turn_runner`, and everything the room sees goes out through `fanout`. The consumer never
awaits a model: a consumer handles one event at a time, and a 40 s stream would block its own stop button.
"""

from __future__ import annotations

import uuid
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from .. import errors, selectors, services
from ..models import Message
from . import events, limits, turn_runner
from .fanout import RoomHub, fanout

ERROR_CODES: dict[type[errors.ChatError], str] = {
    errors.RateLimited: "rate_limited",
    errors.PayloadTooLarge: "too_large",
    errors.TurnInProgress: "turn_in_progress",
    errors.NotFound: "not_found",
    errors.PermissionDenied: "forbidden",
}

db = database_sync_to_async


class RoomConsumer(AsyncWebsocketConsumer):
    # Sockets get no layer channel of their own: the room's hub holds one per process and writes to us directly.
    channel_layer_alias = "__room_sockets_use_hubs__"

    hub: RoomHub | None = None

    async def connect(self) -> None:
        self.channel_name = f"socket-{uuid.uuid4().hex}"
        self.user = self.scope.get("user")
        slug = self.scope["url_route"]["kwargs"]["slug"]
        try:
            room = await db(selectors.room_get_for_user)(user=self.user, slug=slug)
        except errors.ChatError:
            await self.close(code=4403)  # before accept: the handshake is refused, strangers learn nothing
            return
        self.room_id, self.room_slug = room.pk, room.slug
        self.user_id: int = self.user.pk  # type: ignore[union-attr]
        if not await limits.admit(self):  # over the per-member socket cap: told why, then closed
            return
        await self.accept()
        self.hub = await fanout().join(self.room_id, self)
        # Who is here as last announced; the hub's next presence frame (batched) includes this member. No query:
        # a mass join must not queue one per socket.
        await self.send_event(events.room_joined(room, selectors.display_name(self.user), self.hub.presence_names))
        await self.hub.greet(self)

    async def disconnect(self, code: int) -> None:
        limits.release(self)
        if self.hub is not None:
            await fanout().leave(self.room_id, self)
            self.hub = None

    async def send_event(self, event: Any) -> None:
        await self.send(text_data=events.encode(event))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            frame = events.parse_client_frame(text_data)
        except events.FrameError as exc:
            await self.send_event(events.error(exc.code, exc.message))
            return
        kind = frame["type"]
        try:
            room = await db(selectors.room_get_for_user)(user=self.user, room_id=self.room_id)
        except errors.ChatError:
            await self.send_event(events.error("forbidden", "You are no longer a member of this room.", ref=kind))
            await self.close(code=4403)
            return
        try:
            await getattr(self, kind.replace(".", "_"))(frame, room)
        except errors.ChatError as exc:
            code = ERROR_CODES.get(type(exc), "invalid_argument")
            client_id = str(frame.get("client_id", ""))
            await self.send_event(events.error(code, exc.message, ref=kind, client_id=client_id))

    # --- client intents, one handler each ---------------------------------------------------------------------

    async def message_send(self, frame: events.MessageSend, room: Any) -> None:
        conversation = await db(selectors.conversation_get_for_user)(
            user=self.user, conversation_id=frame["conversation_id"], room=room
        )
        message = await db(services.message_create)(
            conversation=conversation, author=self.user, content=frame["content"]
        )
        payload = await db(events.message_payload)(message, self.room_slug)
        await fanout().publish_event(self.room_id, events.chat_message(payload, frame.get("client_id", "")))
        if not await db(services.turn_wanted)(room=room, message=message):
            return
        runner = await turn_runner.runner()
        reply = await db(services.turn_start)(conversation=conversation, reply_to=message, runner=runner.channel)
        runner.start(message=reply, room_id=self.room_id, room_slug=self.room_slug)

    async def turn_cancel(self, frame: events.TurnCancel, room: Any) -> None:
        message = await db(selectors.message_get_for_user)(user=self.user, message_id=frame["message_id"], room=room)
        if message.status != Message.Status.STREAMING:
            raise errors.InvalidArgument("This answer has already finished.")
        await turn_runner.cancel_turn(message=message)

    async def turn_resume(self, frame: events.TurnResume, room: Any) -> None:
        message = await db(selectors.message_get_for_user)(user=self.user, message_id=frame["message_id"], room=room)
        await self._resume(message, frame["last_seq"])

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
            else:
                await self.send_event(events.assistant_end(payload))

    async def conversation_create(self, frame: events.ConversationCreate, room: Any) -> None:
        conversation = await db(services.conversation_create)(room=room, user=self.user, title=frame.get("title"))
        event = await db(events.conversation_event)("conversation.created", conversation, frame.get("client_id", ""))
        await fanout().publish_event(self.room_id, event)

    async def conversation_rename(self, frame: events.ConversationRename, room: Any) -> None:
        conversation = await db(selectors.conversation_get_for_user)(
            user=self.user, conversation_id=frame["conversation_id"], room=room
        )
        conversation = await db(services.conversation_rename)(
            conversation=conversation, title=frame["title"], user=self.user
        )
        event = await db(events.conversation_event)("conversation.renamed", conversation)
        await fanout().publish_event(self.room_id, event)

    async def _resume(self, message: Message, last_seq: int) -> None:
        """Exactly the text after `last_seq`: from the live turn when there is one, else the saved message."""
        if self.hub is not None:
            done = await self.hub.resume(
                self,
                message_id=message.pk,
                last_seq=last_seq,
                origin=message.runner,
                conversation_id=message.conversation_id,
            )
            if done:
                return
        await db(services.turns_interrupt_lapsed)(conversation_id=message.conversation_id)
        message = await db(selectors.message_refresh)(message=message)
        payload = await db(events.message_payload)(message, self.room_slug)
        if message.status == Message.Status.STREAMING:
            # Its process is unreachable but its lease has not lapsed yet: show the last saved text.
            await self.send_event(events.error("turn_unavailable", "This answer is still being written elsewhere."))
            return
        await self.send_event(events.assistant_end(payload))
