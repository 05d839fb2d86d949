"""Writes: every change to assistants, files and API keys goes through one of these functions.

Called by the API views, the admin and the management commands; each validates its input and raises
`errors.ChatError` subclasses with a message for the caller. Reads live in `selectors`. No HTTP here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import google_crc32c
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.utils import timezone

from . import errors, ratelimits
from .jobs.ingest import FileJob, enqueue_ingest
from .knowledge.filters import MetadataError, validate_metadata
from .knowledge.parsers import ParseError, file_kind
from .models import (
    FILE_ID_RE,
    ApiKey,
    Assistant,
    Chunk,
    Conversation,
    File,
    FileBlob,
    FilePage,
    Message,
    MessageFeedback,
    Operation,
    Room,
    validate_assistant_name,
)

INSTRUCTIONS_MAX_BYTES = 16 * 1024
ASSISTANT_METADATA_MAX_BYTES = 16 * 1024
API_KEY_PREFIX = "pcl_"
FILE_NAME_MAX_CHARS = File._meta.get_field("name").max_length or 255

_UNSET: Any = object()


# --- assistants -------------------------------------------------------------------------------------------------


def _check_instructions(instructions: Any) -> str | None:
    if instructions is None:
        return None  # never given: the API answers null; "" stays "" (Pinecone tells the two apart)
    if not isinstance(instructions, str):
        raise errors.InvalidArgument("instructions must be a string")
    if len(instructions.encode()) > INSTRUCTIONS_MAX_BYTES:
        raise errors.InvalidArgument("instructions must be at most 16 KB")
    return instructions


def _check_assistant_metadata(metadata: Any) -> dict:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise errors.InvalidArgument("metadata must be a JSON object")
    if len(json.dumps(metadata, separators=(",", ":")).encode()) > ASSISTANT_METADATA_MAX_BYTES:
        raise errors.InvalidArgument("metadata must be at most 16 KB")
    return metadata


def assistant_create(*, name: Any, instructions: Any = None, metadata: Any = None, region: Any = "us") -> Assistant:
    """Create a Ready assistant. A name held by a Terminating tombstone is freed first."""
    if not isinstance(name, str) or not name:
        raise errors.InvalidArgument("name is required")
    try:
        validate_assistant_name(name)
    except Exception:
        raise errors.InvalidArgument(
            f'Invalid assistant name "{name[:80]}": use 1-63 lowercase letters, digits and "-", '
            "starting and ending with a letter or digit"
        ) from None
    region = region or "us"
    if region not in Assistant.Region.values:
        raise errors.InvalidArgument("Invalid region: Valid options are us, eu")
    fields = {
        "instructions": _check_instructions(instructions),
        "metadata": _check_assistant_metadata(metadata),
        "region": region,
    }
    with transaction.atomic():
        Assistant.objects.filter(name=name, status=Assistant.Status.TERMINATING).delete()
        try:
            with transaction.atomic():
                return Assistant.objects.create(name=name, status=Assistant.Status.READY, **fields)
        except IntegrityError:
            raise errors.AlreadyExists(f'Assistant "{name}" already exists.') from None


def assistant_update(*, assistant: Assistant, instructions: Any = _UNSET, metadata: Any = _UNSET) -> Assistant:
    """Change instructions and/or metadata; `None` (as old clients send) leaves a field unchanged."""
    changed = []
    if instructions is not _UNSET and instructions is not None:
        assistant.instructions = _check_instructions(instructions)
        changed.append("instructions")
    if metadata is not _UNSET and metadata is not None:
        assistant.metadata = _check_assistant_metadata(metadata)
        changed.append("metadata")
    if changed:
        assistant.save(update_fields=[*changed, "updated_at"])
    return assistant


def assistant_delete(*, assistant: Assistant) -> None:
    """Delete an assistant's files now and leave a short-lived Terminating tombstone for polling clients."""
    with transaction.atomic():
        File.objects.filter(assistant=assistant).delete()
        Operation.objects.filter(assistant=assistant).delete()
        assistant.status = Assistant.Status.TERMINATING
        assistant.deleted_at = timezone.now()
        assistant.tombstone_reads = 0
        assistant.save(update_fields=["status", "deleted_at", "tombstone_reads", "updated_at"])


def assistant_purge(*, assistant: Assistant) -> None:
    """Remove a tombstone for good (after clients have seen it)."""
    Assistant.objects.filter(pk=assistant.pk, status=Assistant.Status.TERMINATING).delete()


# --- files ------------------------------------------------------------------------------------------------------


def file_check_upload(name: Any, data: bytes) -> str:
    """Refuse an upload by name and size before anything is stored; returns the file kind."""
    if not isinstance(name, str) or not name.strip():
        raise errors.InvalidArgument("The upload has no file name; the type is read from its extension")
    if len(name) > FILE_NAME_MAX_CHARS:
        raise errors.InvalidArgument(
            f"The file name is {len(name)} characters long; at most {FILE_NAME_MAX_CHARS} are allowed"
        )
    try:
        kind = file_kind(name)
    except ParseError as exc:
        raise errors.InvalidArgument(f"Invalid file type for upload: {exc}") from None
    limit = settings.FILE_MAX_BYTES
    if len(data) > limit:
        raise errors.PayloadTooLarge(f"File {name} is {_mb(len(data))}; the largest file accepted is {_mb(limit)}")
    if not data:
        raise errors.InvalidArgument(f"File {name} is empty")
    return kind


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def _check_metadata(metadata: Any) -> dict:
    try:
        return validate_metadata(metadata)
    except MetadataError as exc:
        raise errors.InvalidArgument(f"Invalid metadata: {exc}") from None


def file_upload(
    *,
    assistant: Assistant,
    name: str,
    data: bytes,
    metadata: Any = None,
    file_id: str | None = None,
    multimodal: bool = False,
) -> tuple[File, Operation, FileJob]:
    """Store an upload and queue its processing, in one transaction (the ingest job commits with the file, so an
    accepted upload survives any restart). With `file_id` it is an upsert: an existing file of that id gets the
    new content and metadata, and keeps answering with its old chunks until the new ones are ready.

    Returns the file, the operation that tracks it, and a handle that waits for processing to end.
    """
    kind = file_check_upload(name, data)
    clean_metadata = _check_metadata(metadata)
    if file_id is not None and not _is_file_id(file_id):
        raise errors.InvalidArgument("file_id must be 1-128 characters of letters, digits, '_' and '-'")
    if assistant.status != Assistant.Status.READY:
        raise errors.FailedPrecondition(f'Assistant "{assistant.name}" is {assistant.status}, not Ready')
    fields = {
        "name": name,
        "kind": kind,
        "size": len(data),
        "metadata": clean_metadata,
        "status": File.Status.PROCESSING,
        "error_message": "",
        "percent_done": 0.0,
        "content_hash": hashlib.sha256(data).hexdigest(),
        "crc32c_hash": crc32c_hash(data),
        "multimodal": bool(multimodal),
        "deleted_at": None,
        "tombstone_reads": 0,
    }
    with transaction.atomic():
        if file_id is None:
            file = File.objects.create(assistant=assistant, **fields)
            op_type = Operation.Type.UPLOAD_FILE
        else:
            file, _created = File.objects.select_for_update().update_or_create(
                assistant=assistant, file_id=file_id, defaults=fields
            )
            op_type = Operation.Type.UPSERT_FILE
        FileBlob.objects.update_or_create(file=file, defaults={"data": data})
        operation = Operation.objects.create(assistant=assistant, operation_type=op_type, file_id=file.file_id)
        handle = enqueue_ingest(file)
    return file, operation, handle


def crc32c_hash(data: bytes) -> str:
    """The CRC32C of `data` as Pinecone's `crc32c_hash` (and Google Cloud Storage) spell it: base64 of the
    checksum's 4 bytes, big-endian."""
    return base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()


def _is_file_id(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(FILE_ID_RE, value) is not None


def file_reprocess(*, file: File) -> FileJob:
    """Run ingestion again on the stored bytes (after a parser fix, or a setting change)."""
    with transaction.atomic():
        File.objects.filter(pk=file.pk).update(
            status=File.Status.PROCESSING, error_message="", percent_done=0.0, updated_on=timezone.now()
        )
        file.status = File.Status.PROCESSING
        return enqueue_ingest(file)


def file_delete(*, file: File) -> Operation:
    """Remove a file from search at once; leave a Deleting tombstone that older clients see on their next poll."""
    now = timezone.now()
    with transaction.atomic():
        Chunk.objects.filter(file=file).delete()
        FilePage.objects.filter(file=file).delete()
        FileBlob.objects.filter(file=file).delete()
        Operation.objects.filter(
            assistant_id=file.assistant_id, file_id=file.file_id, status=Operation.Status.PROCESSING
        ).update(status=Operation.Status.FAILED, error_message="The file was deleted", completed_on=now)
        File.objects.filter(pk=file.pk).update(
            status=File.Status.DELETING, deleted_at=now, tombstone_reads=0, updated_on=now
        )
        return Operation.objects.create(
            assistant_id=file.assistant_id,
            operation_type=Operation.Type.DELETE_FILE,
            file_id=file.file_id,
            status=Operation.Status.COMPLETED,
            percent_complete=100,
            completed_on=now,
        )


def file_purge(*, file: File) -> None:
    File.objects.filter(pk=file.pk, status=File.Status.DELETING).delete()


def tombstone_seen(*, obj: Assistant | File) -> None:
    """Count a read of a tombstone; `selectors` stops showing it after the first."""
    type(obj).objects.filter(pk=obj.pk).update(tombstone_reads=obj.tombstone_reads + 1)


# --- API keys ---------------------------------------------------------------------------------------------------


def hash_api_key(raw_key: str) -> str:
    # Keys are 256-bit random strings, so a plain SHA-256 is enough (a slow password hash would only slow every call).
    return hashlib.sha256(raw_key.encode()).hexdigest()


def api_key_create(*, name: str, assistants: Iterable[Assistant] = (), created_by: Any = None) -> tuple[ApiKey, str]:
    """Create a key and return it with its secret, which is never stored and cannot be shown again."""
    raw_key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey.objects.create(
        name=name or "API key",
        prefix=raw_key[: len(API_KEY_PREFIX) + 8],
        key_hash=hash_api_key(raw_key),
        created_by=created_by,
    )
    key.assistants.set(list(assistants))
    return key, raw_key


def api_key_touch(*, key: ApiKey) -> None:
    """Record use, at most once a minute per key, so that busy keys don't write on every request."""
    now = timezone.now()
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)


# --- rooms: conversations, messages, turns ------------------------------------------------------------------------

CONVERSATION_TITLE_MAX = 200
ASSISTANT_MENTION_RE = re.compile(r"(?<![\w@])@assistant\b", re.IGNORECASE)


def _check_title(title: Any) -> str:
    if not isinstance(title, str):
        raise errors.InvalidArgument("title must be text")
    title = " ".join(title.split())
    if not title:
        raise errors.InvalidArgument("Conversation title cannot be empty")
    if len(title) > CONVERSATION_TITLE_MAX:
        raise errors.InvalidArgument(f"Conversation title is too long ({len(title)} characters, at most 200)")
    return title


def _check_conversation_rate(user: Any) -> None:
    """New conversations and renames are broadcast to the whole room: a member may make only so many per window."""
    limit, window = settings.CHAT_RATE_LIMIT_CONVERSATIONS, settings.CHAT_RATE_LIMIT_SECONDS
    if not ratelimits.hit(
        action="conversation", user_id=getattr(user, "pk", 0) or 0, limit=limit, window_seconds=window
    ):
        raise errors.RateLimited(
            f"You are starting or renaming conversations too fast: at most {limit} per {window} seconds. "
            "Wait a moment and try again."
        )


DEFAULT_CONVERSATION_TITLE = "New conversation"
AUTO_TITLE_MAX = 60


def conversation_create(*, room: Room, user: Any, title: Any = None) -> Conversation:
    named = title not in (None, "")
    title = _check_title(title) if named else DEFAULT_CONVERSATION_TITLE
    _check_conversation_rate(user)
    source = Conversation.TitleSource.MANUAL if named else Conversation.TitleSource.DEFAULT
    return Conversation.objects.create(room=room, title=title, title_source=source, created_by=user)


def conversation_rename(*, conversation: Conversation, title: Any, user: Any = None) -> Conversation:
    """A member's rename: from now on the conversation keeps this name (no automatic title replaces it)."""
    conversation.title = _check_title(title)
    conversation.title_source = Conversation.TitleSource.MANUAL
    if user is not None:
        _check_conversation_rate(user)
    conversation.save(update_fields=["title", "title_source", "updated_at"])
    return conversation


def title_from_question(question: str) -> str:
    """A title derived from the first question: its first line, cut at a word boundary near AUTO_TITLE_MAX."""
    text = " ".join(question.replace("@assistant", " ").split())
    text = text.strip(" .?!:;,-") or DEFAULT_CONVERSATION_TITLE
    if len(text) <= AUTO_TITLE_MAX:
        return text[0].upper() + text[1:]
    cut = text[:AUTO_TITLE_MAX].rsplit(" ", 1)[0] or text[:AUTO_TITLE_MAX]
    return cut[0].upper() + cut[1:] + "…"


def conversation_title_auto(*, conversation_id: int, title: str) -> Conversation | None:
    """Name a conversation after its first answer. Only one still unnamed is changed (one conditional update), so
    a member's rename, made before or while the title was written, always wins. Returns it when renamed."""
    title = " ".join(str(title).split()).strip(" \"'`*#.")[:CONVERSATION_TITLE_MAX]
    if not title:
        return None
    renamed = Conversation.objects.filter(pk=conversation_id, title_source=Conversation.TitleSource.DEFAULT).update(
        title=title, title_source=Conversation.TitleSource.AUTO, updated_at=timezone.now()
    )
    return Conversation.objects.select_related("created_by").get(pk=conversation_id) if renamed else None


def conversation_archive(*, conversation: Conversation, user: Any, archived: bool) -> Conversation:
    """Archive or bring back a conversation: only the member who started it may (staff review sees it either
    way)."""
    if conversation.created_by_id is None or conversation.created_by_id != getattr(user, "pk", None):
        raise errors.PermissionDenied("Only the member who started this conversation can archive it.")
    _check_conversation_rate(user)
    conversation.archived = bool(archived)
    conversation.save(update_fields=["archived", "updated_at"])
    return conversation


def message_create(
    *,
    conversation: Conversation,
    author: Any,
    content: Any,
    client_id: str = "",
    queued: bool = False,
    version: dict[str, Any] | None = None,
) -> Message:
    """Save a member's message. Refuses empty or oversized text and members over the rate limit, saying which.
    `queued` saves it as waiting for an answer (`turn_start_next` picks it up in order); `version`
    (`version_of`, `version`) saves it as a later version of an earlier question."""
    if not isinstance(content, str):
        raise errors.InvalidArgument("content must be text")
    if not content.strip():
        raise errors.InvalidArgument("Message content cannot be empty")
    limit = settings.CHAT_MESSAGE_MAX_CHARS
    if len(content) > limit:
        raise errors.PayloadTooLarge(f"Message is too long: {len(content)} characters, at most {limit}")
    window = settings.CHAT_RATE_LIMIT_SECONDS
    since = timezone.now() - timedelta(seconds=window)
    recent = Message.objects.filter(author=author, role=Message.Role.USER, created_at__gte=since).count()
    if recent >= settings.CHAT_RATE_LIMIT_MESSAGES:
        raise errors.RateLimited(
            f"You are sending messages too fast: at most {settings.CHAT_RATE_LIMIT_MESSAGES} per {window} seconds. "
            "Wait a moment and send again; your text is still in the box."
        )
    status = Message.Status.QUEUED if queued else Message.Status.COMPLETE
    with transaction.atomic():
        message = Message.objects.create(
            conversation=conversation,
            role=Message.Role.USER,
            author=author,
            content=content,
            client_id=client_id,
            status=status,
            requested_by=author if queued else None,
            **(version or {}),
        )
        Conversation.objects.filter(pk=conversation.pk).update(updated_at=timezone.now())
    return message


def message_send(*, conversation: Conversation, author: Any, content: Any, client_id: str = "") -> Message:
    """A member's message from the room: saved once per `client_id` (a resend after a lost connection returns the
    message already saved), and queued for an answer when the room answers it. The caller then asks for the next
    turn (`turn_start_next`); a question sent while another answer streams waits its turn in the database."""
    if client_id and (existing := _sent_before(author=author, client_id=client_id, conversation=conversation)):
        return existing
    room = Room.objects.select_related("assistant").get(pk=conversation.room_id)
    wanted = isinstance(content, str) and answer_wanted(room=room, content=content)
    try:
        return message_create(
            conversation=conversation, author=author, content=content, client_id=client_id, queued=wanted
        )
    except IntegrityError:
        # The same client_id raced in from another socket: that one was saved.
        existing = _sent_before(author=author, client_id=client_id, conversation=conversation)
        if existing is None:
            raise
        return existing


def message_edit(*, message: Message, author: Any, content: Any, client_id: str = "") -> Message:
    """Edit and resend a question: a new version of it (the earlier ones are kept), queued for an answer when the
    room answers it; that answer becomes a new version of the old question's answer. Only the question's author
    may; with `client_id` a resend saves once."""
    if message.role != Message.Role.USER:
        raise errors.InvalidArgument("Only a question can be edited; regenerate an answer instead.")
    if message.author_id is None or message.author_id != getattr(author, "pk", None):
        raise errors.PermissionDenied("You can only edit your own messages.")
    conversation = message.conversation
    if client_id and (existing := _sent_before(author=author, client_id=client_id, conversation=conversation)):
        return existing
    room = Room.objects.select_related("assistant").get(pk=conversation.room_id)
    wanted = isinstance(content, str) and answer_wanted(room=room, content=content)
    root_id = message.version_of_id or message.pk
    for _attempt in range(3):
        number = _next_version(root_id)
        try:
            with transaction.atomic():
                return message_create(
                    conversation=conversation,
                    author=author,
                    content=content,
                    client_id=client_id,
                    queued=wanted,
                    version={"version_of_id": root_id, "version": number},
                )
        except IntegrityError:
            # Another edit of the same question took this version number, or the same client_id raced in.
            if client_id and (existing := _sent_before(author=author, client_id=client_id, conversation=conversation)):
                return existing
    raise errors.FailedPrecondition("The question is being edited elsewhere at this moment; try again.")


def _next_version(root_id: int) -> int:
    highest = Message.objects.filter(version_of_id=root_id).aggregate(n=Max("version"))["n"]
    return (highest or 1) + 1


def message_regenerate(*, message: Message, user: Any) -> Message:
    """Ask for a new version of an answer: its question is queued again (answered in turn, through the runner,
    one answer at a time per conversation); `turn_start_next` makes the new answer a later version of this one.
    Returns the question. The earlier versions are kept."""
    if message.role != Message.Role.ASSISTANT:
        raise errors.InvalidArgument("Only an answer can be regenerated; edit a question instead.")
    if message.status == Message.Status.STREAMING:
        raise errors.InvalidArgument("This answer is still being written; stop it first or wait for its end.")
    if message.reply_to_id is None:
        raise errors.InvalidArgument("The question this answer replied to was deleted; it cannot be regenerated.")
    limit, window = settings.CHAT_RATE_LIMIT_MESSAGES, settings.CHAT_RATE_LIMIT_SECONDS
    if not ratelimits.hit(action="regenerate", user_id=getattr(user, "pk", 0) or 0, limit=limit, window_seconds=window):
        raise errors.RateLimited(f"You are regenerating too fast: at most {limit} per {window} seconds.")
    with transaction.atomic():
        question = Message.objects.select_for_update().get(pk=message.reply_to_id)
        if question.status == Message.Status.QUEUED:
            raise errors.InvalidArgument("A new answer to this question is already on its way.")
        if Message.objects.filter(reply_to_id=question.pk, status=Message.Status.STREAMING).exists():
            raise errors.InvalidArgument("An answer to this question is being written; wait for its end.")
        question.status = Message.Status.QUEUED
        question.requested_by = user
        question.save(update_fields=["status", "requested_by"])
        Conversation.objects.filter(pk=question.conversation_id).update(updated_at=timezone.now())
    return Message.objects.select_related("author", "conversation").get(pk=question.pk)


def turn_stop_request(*, message: Message, user: Any) -> None:
    """Record who stops a streaming answer, after checking they may (`selectors.message_may_stop`). The runner
    then cancels it; if it ends otherwise first, `turn_finish` clears the record."""
    from .selectors import message_may_stop

    if message.role != Message.Role.ASSISTANT or message.status != Message.Status.STREAMING:
        raise errors.InvalidArgument("This answer has already finished.")
    if not message_may_stop(user=user, message=message):
        raise errors.PermissionDenied("Only the member who asked for this answer, or a room manager, can stop it.")
    Message.objects.filter(pk=message.pk, status=Message.Status.STREAMING).update(stopped_by=user)


FEEDBACK_COMMENT_MAX = 2000


def feedback_set(*, message: Message, user: Any, value: Any, comment: Any = "") -> MessageFeedback | None:
    """A member's vote on one version of an answer: "up" or "down" with an optional comment, replacing their
    earlier vote on it, or "none" to take it back. Returns the vote (None when taken back)."""
    if message.role != Message.Role.ASSISTANT:
        raise errors.InvalidArgument("Feedback is for answers only.")
    if message.status in (Message.Status.STREAMING, Message.Status.QUEUED):
        raise errors.InvalidArgument("Wait for the end of this answer to give feedback.")
    if value not in ("up", "down", "none"):
        raise errors.InvalidArgument("value must be 'up', 'down' or 'none'.")
    if not isinstance(comment, str):
        raise errors.InvalidArgument("comment must be text.")
    comment = comment.strip()
    if len(comment) > FEEDBACK_COMMENT_MAX:
        raise errors.PayloadTooLarge(
            f"The comment is too long: {len(comment)} characters, at most {FEEDBACK_COMMENT_MAX}."
        )
    if not ratelimits.hit(
        action="feedback",
        user_id=getattr(user, "pk", 0) or 0,
        limit=settings.CHAT_RATE_LIMIT_MESSAGES * 3,
        window_seconds=settings.CHAT_RATE_LIMIT_SECONDS,
    ):
        raise errors.RateLimited("You are changing feedback too fast; wait a moment.")
    if value == "none":
        MessageFeedback.objects.filter(message=message, user=user).delete()
        return None
    feedback, _created = MessageFeedback.objects.update_or_create(
        message=message, user=user, defaults={"value": value, "comment": comment}
    )
    return feedback


def _sent_before(*, author: Any, client_id: str, conversation: Conversation) -> Message | None:
    existing = Message.objects.filter(author=author, client_id=client_id).first()
    if existing is not None and existing.conversation_id != conversation.pk:
        raise errors.InvalidArgument("This client_id was already used for another message; send with a new one.")
    return existing


def message_addresses_assistant(*, room: Room, content: str) -> bool:
    """Whether a message calls on the assistant: `@assistant` or `@<assistant name>`."""
    if ASSISTANT_MENTION_RE.search(content):
        return True
    name = re.escape(room.assistant.name)
    return re.search(rf"(?<![\w@])@{name}\b", content, re.IGNORECASE) is not None


def answer_wanted(*, room: Room, content: str) -> bool:
    """Whether the room answers this message: every message, or only those that address the assistant."""
    return room.reply_mode == Room.ReplyMode.EVERY or message_addresses_assistant(room=room, content=content)


def _lease() -> Any:
    return timezone.now() + timedelta(seconds=settings.CHAT_TURN_LEASE_SECONDS)


def turn_start_next(*, conversation_id: int, runner: str) -> Message | None:
    """Start the answer to the oldest queued question of a conversation, unless an answer is streaming there.

    Creates the streaming assistant message (with a snapshot of the room's settings as they are now) and marks the
    question answered, in one transaction; the database's one-streaming-message rule makes this safe when several
    processes try at once (all but one get None). Returns the new message (with its conversation and room), or None
    when nothing waits or an answer is already streaming. A streaming answer whose process died is not taken over
    here: the processes' supervisors end it first (after asking its process), then call this."""
    with transaction.atomic():
        if Message.objects.filter(conversation_id=conversation_id, status=Message.Status.STREAMING).exists():
            return None
        question = (
            Message.objects.filter(conversation_id=conversation_id, status=Message.Status.QUEUED).order_by("id").first()
        )
        if question is None:
            return None
        room = Room.objects.get(conversations__pk=conversation_id)
        try:
            with transaction.atomic():
                reply = Message.objects.create(
                    conversation_id=conversation_id,
                    role=Message.Role.ASSISTANT,
                    reply_to=question,
                    requested_by_id=question.requested_by_id or question.author_id,
                    **_answer_version(question),
                    status=Message.Status.STREAMING,
                    model=room.model,
                    temperature=room.temperature,
                    metadata_filter=room.metadata_filter or None,
                    runner=runner,
                    lease_expires_at=_lease(),
                )
        except IntegrityError:
            return None  # another process started one this instant
        updated = Message.objects.filter(pk=question.pk, status=Message.Status.QUEUED).update(
            status=Message.Status.COMPLETE
        )
        if not updated:  # taken by another process between our reads (the unique rule makes this unreachable)
            transaction.set_rollback(True)
            return None
    return Message.objects.select_related("conversation__room", "reply_to").get(pk=reply.pk)


def _answer_version(question: Message) -> dict[str, Any]:
    """Where a new answer to `question` goes: a later version of the first answer to any version of that question
    (a regenerate, or an edited question), else a place of its own."""
    root_question = question.version_of_id or question.pk
    first_answer = (
        Message.objects.filter(role=Message.Role.ASSISTANT, version_of__isnull=True)
        .filter(Q(reply_to_id=root_question) | Q(reply_to__version_of_id=root_question))
        .order_by("id")
        .values_list("pk", flat=True)
        .first()
    )
    if first_answer is None:
        return {}
    return {"version_of_id": first_answer, "version": _next_version(first_answer)}


TURN_INTERRUPTED_ERROR = "The server stopped during this answer."


def turns_interrupt_lapsed(*, conversation_id: int, grace_seconds: float = 0.0) -> int:
    """Mark streaming answers whose process died (lease lapsed more than `grace_seconds` ago) as interrupted,
    keeping their last saved text. Called when a page finds one, with a grace that leaves the processes'
    supervisors (which first ask the turn's process whether it lives) time to act. Returns how many were marked."""
    now = timezone.now()
    return Message.objects.filter(
        conversation_id=conversation_id,
        status=Message.Status.STREAMING,
        lease_expires_at__lt=now - timedelta(seconds=grace_seconds),
    ).update(status=Message.Status.INTERRUPTED, completed_at=now, error=TURN_INTERRUPTED_ERROR, stopped_by=None)


def turn_interrupt_if_lapsed(*, message_id: int) -> Message | None:
    """End one streaming answer whose lease lapsed (its process is gone) as interrupted, keeping its last saved
    text. Returns the message when this call ended it, None when it was not streaming or its lease is live (so of
    several processes finding the same dead turn, exactly one ends it)."""
    now = timezone.now()
    ended = Message.objects.filter(pk=message_id, status=Message.Status.STREAMING, lease_expires_at__lt=now).update(
        status=Message.Status.INTERRUPTED,
        completed_at=now,
        lease_expires_at=None,
        error=TURN_INTERRUPTED_ERROR,
        stopped_by=None,
    )
    if not ended:
        return None
    return Message.objects.select_related("conversation").get(pk=message_id)


def turns_renew(*, checkpoints: dict[int, tuple[str, int] | None]) -> set[int]:
    """One process's periodic write for all its running turns: each turn's lease is renewed, and those whose text
    grew since the last call (`(content, seq)`, None when unchanged) have it saved. Returns the ids still streaming
    (a missing id was ended elsewhere)."""
    alive: set[int] = set()
    lease = _lease()
    with transaction.atomic():
        silent = [message_id for message_id, saved in checkpoints.items() if saved is None]
        for message_id, saved in checkpoints.items():
            if saved is not None and Message.objects.filter(pk=message_id, status=Message.Status.STREAMING).update(
                content=saved[0], seq=saved[1], lease_expires_at=lease
            ):
                alive.add(message_id)
        if silent:
            streaming = Message.objects.filter(pk__in=silent, status=Message.Status.STREAMING)
            alive.update(streaming.values_list("pk", flat=True))
            streaming.update(lease_expires_at=lease)
    return alive


def turn_finish(
    *,
    message_id: int,
    status: str,
    content: str,
    citations: list[dict],
    seq: int,
    model: str = "",
    temperature: float | None = None,
    finish_reason: str = "",
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    first_token_ms: float | None = None,
    total_ms: float | None = None,
    error: str = "",
) -> Message:
    """Save the end of a turn in one write. Returns the saved message."""
    fields: dict[str, Any] = {
        "status": status,
        "content": content,
        "citations": citations,
        "seq": seq,
        "finish_reason": finish_reason,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "first_token_ms": first_token_ms,
        "total_ms": total_ms,
        "error": error,
        "completed_at": timezone.now(),
        "lease_expires_at": None,
        "temperature": temperature,
    }
    if model:
        fields["model"] = model
    if status != Message.Status.CANCELLED:
        fields["stopped_by"] = None  # a stop that came too late: the answer ended otherwise
    with transaction.atomic():
        Message.objects.filter(pk=message_id).update(**fields)
        message = Message.objects.select_related("conversation").get(pk=message_id)
        Conversation.objects.filter(pk=message.conversation_id).update(updated_at=timezone.now())
    return message
