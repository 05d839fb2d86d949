"""The room websocket protocol: every client frame and every server event, typed, in one place.

Client intents (`message.send`, `turn.cancel`, ...) and server events (`chat.message`, `assistant.delta`, ...)
never share a name. `parse_client_frame` is the allow-list the consumer applies to every frame; the builders here
are the only place server events are shaped. Payloads are JSON-native (the Redis layer's msgpack rejects
datetimes). Imports the domain core only (models, `message_html`, selectors); nothing here touches a socket.
"""

from __future__ import annotations

import json
from typing import Any, Literal, NotRequired, TypedDict

from ..message_html import message_sources, render_message_html
from ..models import Conversation, Message, Room

MAX_FRAME_CHARS = 64 * 1024
CLIENT_ID_MAX = 64

# Close codes a room socket ends with (beside the standard ones). A client does not reconnect after 4401 or 4403.
CLOSE_SIGNED_OUT = 4401  # the session ended: logged out, password changed, account deactivated
CLOSE_NO_ACCESS = 4403  # not (or no longer) a member of the room
CLOSE_RESTARTING = 4012  # this process is shutting down: reconnect at once (autobahn allows no 1012)

# --- client frames ------------------------------------------------------------------------------------------------


class MessageSend(TypedDict):
    """A member's message. With `client_id`, sending the same frame again (after a lost connection or a retryable
    error) saves it once. A question sent while an answer streams is queued (`status: "queued"`) and answered in
    order."""

    type: Literal["message.send"]
    conversation_id: int
    content: str
    client_id: NotRequired[str]


class TurnCancel(TypedDict):
    type: Literal["turn.cancel"]
    message_id: int


class TurnResume(TypedDict):
    """Ask for the deltas of a streaming answer after `last_seq` (0: from the start). `chars`, the length of the
    text the client holds, lets a process that no longer has the turn's frames send the rest from the saved answer.
    Answered once per socket: a catch-up delta (`from_seq` = `last_seq` + 1) and the live deltas after it, or, when
    the answer has ended, the rest of its text and its end."""

    type: Literal["turn.resume"]
    message_id: int
    last_seq: int
    chars: NotRequired[int]


class ConversationSync(TypedDict):
    """Ask for every message of a conversation after `after_id` (a reconnecting client's last known message)."""

    type: Literal["conversation.sync"]
    conversation_id: int
    after_id: int


class ConversationCreate(TypedDict):
    type: Literal["conversation.create"]
    title: NotRequired[str]
    client_id: NotRequired[str]


class ConversationRename(TypedDict):
    type: Literal["conversation.rename"]
    conversation_id: int
    title: str


class MessageRegenerate(TypedDict):
    """Ask for a new version of an answer (any member). Its question is queued again and answered in turn; the new
    answer arrives as `assistant.start` with `version_of` naming the answer's place. Earlier versions are kept."""

    type: Literal["message.regenerate"]
    message_id: int


class MessageEdit(TypedDict):
    """Edit and resend one's own question: a new version of it (`chat.message` with `version_of`), answered as a
    new version of the old question's answer. Only the question's author may."""

    type: Literal["message.edit"]
    message_id: int
    content: str
    client_id: NotRequired[str]


class FeedbackSet(TypedDict):
    """A member's vote on an answer version: "up", "down" or "none" (take it back), with an optional comment."""

    type: Literal["feedback.set"]
    message_id: int
    value: Literal["up", "down", "none"]
    comment: NotRequired[str]


class TypingNotify(TypedDict):
    """The member is typing in a conversation. Not stored; passed on at most once per TYPING_INTERVAL per socket."""

    type: Literal["typing.notify"]
    conversation_id: int


class ConversationArchive(TypedDict):
    """Archive (or, with `archived: false`, bring back) a conversation. Only the member who started it may."""

    type: Literal["conversation.archive"]
    conversation_id: int
    archived: bool


ClientFrame = (
    MessageSend
    | TurnCancel
    | TurnResume
    | ConversationSync
    | ConversationCreate
    | ConversationRename
    | MessageRegenerate
    | MessageEdit
    | FeedbackSet
    | TypingNotify
    | ConversationArchive
)
TYPING_INTERVAL = 3.0  # seconds between two `member.typing` events from one socket


class FrameError(ValueError):
    """A frame the protocol does not allow; the socket stays open and the client gets an `error` event."""

    def __init__(self, message: str, code: str = "invalid_frame") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


_FIELDS: dict[str, dict[str, tuple[type, bool]]] = {
    # type -> field -> (python type, required)
    "message.send": {"conversation_id": (int, True), "content": (str, True), "client_id": (str, False)},
    "turn.cancel": {"message_id": (int, True)},
    "turn.resume": {"message_id": (int, True), "last_seq": (int, True), "chars": (int, False)},
    "conversation.sync": {"conversation_id": (int, True), "after_id": (int, True)},
    "conversation.create": {"title": (str, False), "client_id": (str, False)},
    "conversation.rename": {"conversation_id": (int, True), "title": (str, True)},
    "message.regenerate": {"message_id": (int, True)},
    "message.edit": {"message_id": (int, True), "content": (str, True), "client_id": (str, False)},
    "feedback.set": {"message_id": (int, True), "value": (str, True), "comment": (str, False)},
    "typing.notify": {"conversation_id": (int, True)},
    "conversation.archive": {"conversation_id": (int, True), "archived": (bool, True)},
}


def parse_client_frame(text: str | None) -> ClientFrame:
    """Check a frame against the allow-list: known type, known fields only, right types. Raises `FrameError`."""
    if text is None:
        raise FrameError("Frames must be JSON text, not binary.")
    if len(text) > MAX_FRAME_CHARS:
        raise FrameError(f"Frame is too large ({len(text)} characters, at most {MAX_FRAME_CHARS}).", "too_large")
    try:
        data = json.loads(text)
    except ValueError:
        raise FrameError("Frame is not valid JSON.") from None
    except RecursionError:
        raise FrameError("Frame is nested too deeply.") from None
    if not isinstance(data, dict):
        raise FrameError("Frame must be a JSON object with a 'type'.")
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in _FIELDS:
        raise FrameError(f"Unknown frame type {kind!r}; expected one of {', '.join(sorted(_FIELDS))}.")
    spec = _FIELDS[kind]
    unknown = sorted(set(data) - set(spec) - {"type"})
    if unknown:
        raise FrameError(f"Unknown field(s) for {kind}: {', '.join(unknown)}.")
    for name, (python_type, required) in spec.items():
        if name not in data:
            if required:
                raise FrameError(f"{kind} needs '{name}'.")
            continue
        value = data[name]
        if python_type is int and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise FrameError(f"'{name}' must be a non-negative whole number.")
        if python_type is str and not isinstance(value, str):
            raise FrameError(f"'{name}' must be text.")
        if python_type is bool and not isinstance(value, bool):
            raise FrameError(f"'{name}' must be true or false.")
        if python_type is str and not _is_unicode(value):
            raise FrameError(f"'{name}' has text that is not valid Unicode (a lone surrogate such as \\ud800).")
    if len(data.get("client_id", "")) > CLIENT_ID_MAX:
        raise FrameError(f"'client_id' is at most {CLIENT_ID_MAX} characters.")
    if kind == "feedback.set" and data["value"] not in ("up", "down", "none"):
        raise FrameError("'value' must be 'up', 'down' or 'none'.")
    return data  # type: ignore[return-value]


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# --- server events ------------------------------------------------------------------------------------------------


class MessagePayload(TypedDict):
    id: int
    conversation_id: int
    role: str
    author: str | None
    author_id: int | None
    content: str
    html: str
    citations: list[dict[str, Any]]
    status: str
    model: str
    temperature: float | None
    metadata_filter: dict[str, Any] | None
    finish_reason: str
    usage: dict[str, int]
    first_token_ms: float | None
    total_ms: float | None
    error: str
    seq: int
    created_at: str
    reply_to: int | None  # an answer: the question it answers
    version: int  # 1 for the first version of its place, then 2, 3, ...
    version_of: int | None  # the first version's id (None: this is the first)
    slot: int  # version_of or id: the place in the conversation all versions share
    versions: list[int]  # every version's id, first to latest
    version_count: int  # len(versions)
    edited: bool  # a question that is a later version (edited and resent)
    feedback: dict[str, int]  # {"up": n, "down": n} over members, for this version
    stopped_by: str | None  # who stopped the answer (status cancelled)
    stopped_by_id: int | None
    requested_by_id: int | None  # who asked for this answer (may stop it, as room managers may)
    sources: list[dict[str, Any]]  # an answer's cited sources: number, file_id, file_name, pages, quote, url


class ConversationPayload(TypedDict):
    id: int
    title: str
    created_by: str | None
    created_by_id: int | None
    updated_at: str
    archived: bool
    title_source: str  # "default" (not named yet), "auto" (after the first answer) or "manual"


class RoomPayload(TypedDict):
    slug: str
    name: str
    assistant: str
    model: str
    temperature: float | None
    metadata_filter: dict[str, Any]
    reply_mode: str


class RoomJoined(TypedDict):
    type: Literal["room.joined"]
    room: RoomPayload
    user: str
    presence: list[str]


class Presence(TypedDict):
    type: Literal["presence"]
    members: list[str]


class ConversationEvent(TypedDict):
    """A conversation was started, renamed (by a member, or automatically after its first answer: `title_source`
    "auto"), or archived / brought back by its creator (`conversation.archived`, see `archived`)."""

    type: Literal["conversation.created", "conversation.renamed", "conversation.archived"]
    conversation: ConversationPayload
    client_id: NotRequired[str]


class ChatMessage(TypedDict):
    type: Literal["chat.message"]
    message: MessagePayload
    client_id: NotRequired[str]


class AssistantStart(TypedDict):
    """A turn began. With `resume` (sent to a socket that joined mid-turn) the client must send `turn.resume`
    with the seq it holds (0 if none) to get the text; without it the deltas follow live."""

    type: Literal["assistant.start"]
    message: MessagePayload
    resume: NotRequired[bool]


class AssistantDelta(TypedDict):
    """`text` continues the answer after delta `from_seq - 1` (`from_seq` defaults to `seq`; a resume sends one
    delta covering several). `html`, when present, is the sanitized rendering of the Markdown blocks completed
    since the last one, ending at character `html_upto` of the answer."""

    type: Literal["assistant.delta"]
    conversation_id: int
    message_id: int
    seq: int
    text: str
    html: NotRequired[str]
    html_upto: NotRequired[int]
    from_seq: NotRequired[int]


class AssistantDone(TypedDict):
    """Authoritative end of a turn (complete or cancelled): replaces whatever the client assembled."""

    type: Literal["assistant.done"]
    message: MessagePayload


class AssistantError(TypedDict):
    type: Literal["assistant.error"]
    message: MessagePayload


class ErrorEvent(TypedDict):
    """A frame could not be handled. With `retryable` the server had a passing fault (its database or channel
    layer): sending the same frame again later may work, and a `message.send` with its `client_id` is saved once."""

    type: Literal["error"]
    code: str
    message: str
    ref: NotRequired[str]
    client_id: NotRequired[str]
    retryable: NotRequired[bool]


class MessageUpdated(TypedDict):
    """A message changed in place (e.g. a question queued again for a regenerate): replace the one with this id."""

    type: Literal["message.updated"]
    message: MessagePayload


class FeedbackUpdated(TypedDict):
    """The vote counts of an answer version changed (to everyone; who voted how is not sent)."""

    type: Literal["feedback.updated"]
    conversation_id: int
    message_id: int
    up: int
    down: int


class FeedbackMine(TypedDict):
    """The sender's own vote as saved (to the sender only)."""

    type: Literal["feedback.mine"]
    message_id: int
    value: str | None
    comment: str


class MemberTyping(TypedDict):
    """A member is typing in a conversation: show it for a few seconds after the last one. Never stored."""

    type: Literal["member.typing"]
    conversation_id: int
    user: str
    user_id: int


class RoomUpdated(TypedDict):
    """Staff changed the room's settings in the admin: the header's new data."""

    type: Literal["room.updated"]
    room: RoomPayload


class RoomResync(TypedDict):
    """This process lost its link to the other processes for a while (a channel-layer outage) and has it again:
    events of that time may be missing, so the client sends `conversation.sync` with the last message id it holds.
    Answers in flight need nothing: their text continues in order."""

    type: Literal["room.resync"]


def encode(event: Any) -> str:
    """Events are encoded once and the same text is written to every socket."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


def message_payload(
    message: Message,
    room_slug: str,
    *,
    author_name: str | None = None,
    versions: list[int] | None = None,
    feedback: dict[str, int] | None = None,
) -> MessagePayload:
    """A message as every member gets it. `versions` and `feedback` may be passed when read in bulk (a page of
    messages); otherwise they are read here (one query each)."""
    from ..selectors import display_name, feedback_counts, message_versions

    author = None
    if message.author_id is not None:
        author = author_name or display_name(message.author)
    if versions is None:
        versions = getattr(message, "version_ids", None) or message_versions(message=message)
    if feedback is None:
        feedback = {"up": 0, "down": 0}
        if message.role == Message.Role.ASSISTANT and message.pk is not None:
            feedback = feedback_counts(message_ids=[message.pk])[message.pk]
    stopped_by = display_name(message.stopped_by) if message.stopped_by_id is not None else None
    is_answer = message.role == Message.Role.ASSISTANT
    return {
        "id": message.pk,
        "conversation_id": message.conversation_id,
        "role": message.role,
        "author": author,
        "author_id": message.author_id,
        "content": message.content,
        "html": render_message_html(message, room_slug),
        "citations": message.citations or [],
        "status": message.status,
        "model": message.model,
        "temperature": message.temperature,
        "metadata_filter": message.metadata_filter,
        "finish_reason": message.finish_reason,
        "usage": {"prompt_tokens": message.prompt_tokens, "completion_tokens": message.completion_tokens},
        "first_token_ms": message.first_token_ms,
        "total_ms": message.total_ms,
        "error": message.error,
        "seq": message.seq,
        "created_at": message.created_at.isoformat() if message.created_at else "",
        "reply_to": message.reply_to_id,
        "version": message.version,
        "version_of": message.version_of_id,
        "slot": message.version_of_id or message.pk,
        "versions": versions,
        "version_count": len(versions),
        "edited": not is_answer and message.version > 1,
        "feedback": feedback,
        "stopped_by": stopped_by,
        "stopped_by_id": message.stopped_by_id,
        "requested_by_id": message.requested_by_id,
        "sources": message_sources(message.citations or [], room_slug) if is_answer else [],
    }


def conversation_payload(conversation: Conversation) -> ConversationPayload:
    from ..selectors import display_name

    return {
        "id": conversation.pk,
        "title": conversation.title,
        "created_by": display_name(conversation.created_by) if conversation.created_by_id else None,
        "created_by_id": conversation.created_by_id,
        "updated_at": conversation.updated_at.isoformat() if conversation.updated_at else "",
        "archived": conversation.archived,
        "title_source": conversation.title_source,
    }


def room_payload(room: Room) -> RoomPayload:
    return {
        "slug": room.slug,
        "name": room.name,
        "assistant": room.assistant.name,
        "model": room.model or "default",
        "temperature": room.temperature,
        "metadata_filter": room.metadata_filter or {},
        "reply_mode": room.reply_mode,
    }


def room_joined(room: Room, user: str, presence: list[str]) -> RoomJoined:
    return {"type": "room.joined", "room": room_payload(room), "user": user, "presence": presence}


def presence(members: list[str]) -> Presence:
    return {"type": "presence", "members": members}


def conversation_event(
    kind: Literal["conversation.created", "conversation.renamed", "conversation.archived"],
    conversation: Conversation,
    client_id: str = "",
) -> ConversationEvent:
    event: ConversationEvent = {"type": kind, "conversation": conversation_payload(conversation)}
    if client_id:
        event["client_id"] = client_id
    return event


def chat_message(payload: MessagePayload, client_id: str = "") -> ChatMessage:
    event: ChatMessage = {"type": "chat.message", "message": payload}
    if client_id:
        event["client_id"] = client_id
    return event


def assistant_start(payload: MessagePayload) -> AssistantStart:
    return {"type": "assistant.start", "message": payload}


def assistant_delta(
    *, conversation_id: int, message_id: int, seq: int, text: str, html: str = "", html_upto: int = 0
) -> AssistantDelta:
    event: AssistantDelta = {
        "type": "assistant.delta",
        "conversation_id": conversation_id,
        "message_id": message_id,
        "seq": seq,
        "text": text,
    }
    if html:
        event["html"] = html
        event["html_upto"] = html_upto
    return event


def assistant_end(payload: MessagePayload) -> AssistantDone | AssistantError:
    if payload["status"] in (Message.Status.FAILED, Message.Status.INTERRUPTED):
        return {"type": "assistant.error", "message": payload}
    return {"type": "assistant.done", "message": payload}


def error(code: str, message: str, *, ref: str = "", client_id: str = "", retryable: bool = False) -> ErrorEvent:
    event: ErrorEvent = {"type": "error", "code": code, "message": message}
    if ref:
        event["ref"] = ref
    if client_id:
        event["client_id"] = client_id
    if retryable:
        event["retryable"] = True
    return event


def message_updated(payload: MessagePayload) -> MessageUpdated:
    return {"type": "message.updated", "message": payload}


def feedback_updated(*, conversation_id: int, message_id: int, counts: dict[str, int]) -> FeedbackUpdated:
    return {
        "type": "feedback.updated",
        "conversation_id": conversation_id,
        "message_id": message_id,
        "up": counts.get("up", 0),
        "down": counts.get("down", 0),
    }


def feedback_mine(*, message_id: int, value: str | None, comment: str) -> FeedbackMine:
    return {"type": "feedback.mine", "message_id": message_id, "value": value, "comment": comment}


def member_typing(*, conversation_id: int, user: str, user_id: int) -> MemberTyping:
    return {"type": "member.typing", "conversation_id": conversation_id, "user": user, "user_id": user_id}


def model_label(model: str) -> str:
    """The room's model as members should read it: an empty setting names the model the default is now."""
    from .. import errors, turns

    if model:
        return model
    try:
        return f"{turns.resolve_model(None)[1].id} (default)"
    except errors.ChatError:
        return "default"


def room_updated(room: Room) -> RoomUpdated:
    return {"type": "room.updated", "room": {**room_payload(room), "model": model_label(room.model)}}


def room_resync() -> RoomResync:
    return {"type": "room.resync"}
