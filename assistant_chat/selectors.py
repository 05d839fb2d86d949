"""Reads: the one permission-checked door to each object, and the queries pages and the API list with.

Called by API views, the admin and commands. Every lookup under an API key goes through
`assistant_get_for_key`, which checks the key's scope before it says whether the assistant exists, so a key
learns nothing about assistants it may not use. Writes live in `services`.
"""

from __future__ import annotations

import base64
import binascii
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Count, Field, Model, Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from . import errors, services
from .knowledge.filters import FilterError, MetadataFilter, parse_filter
from .models import ApiKey, Assistant, Conversation, File, Message, MessageFeedback, Operation, Room
from .raw_rows import Converter, column_converters

# --- API keys ---------------------------------------------------------------------------------------------------


def api_key_authenticate(*, raw_key: str | None) -> ApiKey:
    """The live key for a presented secret, or `Unauthenticated`."""
    if not raw_key:
        raise errors.Unauthenticated("Invalid API key.")
    # get(), not first(): key_hash is unique, and first()'s ORDER BY doubles the ORM's cost on every API call.
    try:
        key = ApiKey.objects.prefetch_related("assistants").get(
            key_hash=services.hash_api_key(raw_key.strip()), revoked=False
        )
    except ApiKey.DoesNotExist:
        raise errors.Unauthenticated("Invalid API key.") from None
    services.api_key_touch(key=key)
    return key


@dataclass(frozen=True)
class KeyAccess:
    """A live key and what it may do with one named assistant, read together (`api_key_authenticate_for`)."""

    key_id: int
    assistant: Assistant | None  # None: no assistant has that name
    allowed: bool  # the key's scope includes the name (always true for an unrestricted key)


# The chat endpoints' door, as one raw query: the key by its hash, whether it is restricted, whether the named
# assistant is in its scope, and the assistant's row. Through the ORM this was four queries (key, its scope via
# prefetch, assistant) whose compilation cost ~0.5 ms each, far more than running them.
_KEY_ACCESS_SQL = """
SELECT k.{key_pk}, k.{last_used_at},
  EXISTS (SELECT 1 FROM {scope} s WHERE s.{scope_key} = k.{key_pk}) AS restricted,
  EXISTS (SELECT 1 FROM {scope} s WHERE s.{scope_key} = k.{key_pk} AND s.{scope_assistant} = a.{assistant_pk}) AS in_scope,
  {assistant_columns}
FROM {key} k LEFT JOIN {assistant} a ON a.{name} = %s
WHERE k.{key_hash} = %s AND k.{revoked} = %s
"""


def _column(model: type[Model], name: str) -> str:
    field = model._meta.get_field(name)
    assert isinstance(field, Field) and field.column
    return field.column


def _key_access_sql(db: BaseDatabaseWrapper) -> str:
    quote = db.ops.quote_name
    through = ApiKey.assistants.through
    return _KEY_ACCESS_SQL.format(
        scope=quote(through._meta.db_table),
        scope_key=quote(_column(through, "apikey")),
        scope_assistant=quote(_column(through, "assistant")),
        key_pk=quote(_column(ApiKey, "id")),
        assistant_pk=quote(_column(Assistant, "id")),
        last_used_at=quote(_column(ApiKey, "last_used_at")),
        assistant_columns=", ".join(f"a.{quote(_column(Assistant, f.name))}" for f in Assistant._meta.concrete_fields),
        key=quote(ApiKey._meta.db_table),
        assistant=quote(Assistant._meta.db_table),
        name=quote(_column(Assistant, "name")),
        key_hash=quote(_column(ApiKey, "key_hash")),
        revoked=quote(_column(ApiKey, "revoked")),
    )


# Per database connection (a thread's own; their converters are bound to it): the SQL and each column's converter.
_row_readers: weakref.WeakKeyDictionary[BaseDatabaseWrapper, tuple[str, list[Converter]]] = weakref.WeakKeyDictionary()


def _key_access_reader(db: BaseDatabaseWrapper) -> tuple[str, list[Converter]]:
    reader = _row_readers.get(db)
    if reader is None:
        fields = [ApiKey._meta.get_field("last_used_at"), *Assistant._meta.concrete_fields]
        reader = _row_readers[db] = (_key_access_sql(db), column_converters(db, fields))  # type: ignore[arg-type]
    return reader


def api_key_authenticate_for(*, raw_key: str | None, name: str) -> KeyAccess:
    """The live key for a presented secret with what it may do with assistant `name`, in one query; raises
    `Unauthenticated` like `api_key_authenticate`. Called by the chat endpoints, which then check the body and
    only then the assistant (`assistant_get_for_access`), the same order of errors as the other endpoints.
    Nothing is cached: a revoked key or a changed scope applies to the next request."""
    if not raw_key:
        raise errors.Unauthenticated("Invalid API key.")
    db = connections[DEFAULT_DB_ALIAS]
    sql, converters = _key_access_reader(db)
    with db.cursor() as cursor:
        cursor.execute(sql, [name, services.hash_api_key(raw_key.strip()), False])
        row = cursor.fetchone()
    if row is None:
        raise errors.Unauthenticated("Invalid API key.")
    key_id, last_used_at, restricted, in_scope, *columns = row
    services.api_key_touch(key=ApiKey(pk=key_id, last_used_at=converters[0](last_used_at)))
    assistant = None
    if columns[0] is not None:
        values = [convert(value) for convert, value in zip(converters[1:], columns, strict=True)]
        assistant = Assistant.from_db(db.alias, [f.attname for f in Assistant._meta.concrete_fields], values)
    return KeyAccess(key_id=key_id, assistant=assistant, allowed=not restricted or bool(in_scope))


def assistant_get_for_access(*, access: KeyAccess, name: str) -> Assistant:
    """`assistant_get_for_key` for a `KeyAccess`: the scope is checked before existence, a Terminating assistant
    is gone (and purged)."""
    if not access.allowed:
        raise errors.PermissionDenied(f'This API key is not allowed to use assistant "{name}".')
    return _live_assistant(access.assistant, name, show_tombstone=False)


def api_key_scope(key: ApiKey) -> set[str] | None:
    """Names of the assistants a key may use, or None for an unrestricted key."""
    names = {assistant.name for assistant in key.assistants.all()}
    return names or None


def api_key_require_manager(key: ApiKey) -> None:
    if api_key_scope(key) is not None:
        raise errors.PermissionDenied(
            "This API key is limited to specific assistants and may not create or delete assistants."
        )


# --- assistants -------------------------------------------------------------------------------------------------


def _tombstone_visible(obj: Assistant | File) -> bool:
    if obj.deleted_at is None or obj.tombstone_reads >= 1:
        return False
    return (timezone.now() - obj.deleted_at).total_seconds() < settings.API_TOMBSTONE_SECONDS


def assistant_get_for_key(*, key: ApiKey, name: str, show_tombstone: bool = False) -> Assistant:
    """The assistant `name` if `key` may use it. A Terminating assistant is shown once, and only when
    `show_tombstone` (describe by a client that polls for deletion); otherwise it is gone."""
    scope = api_key_scope(key)
    if scope is not None and name not in scope:
        raise errors.PermissionDenied(f'This API key is not allowed to use assistant "{name}".')
    try:
        assistant: Assistant | None = Assistant.objects.get(name=name)  # unique: get() skips first()'s ORDER BY
    except Assistant.DoesNotExist:
        assistant = None
    return _live_assistant(assistant, name, show_tombstone=show_tombstone)


def _live_assistant(assistant: Assistant | None, name: str, *, show_tombstone: bool) -> Assistant:
    if assistant is not None and assistant.status == Assistant.Status.TERMINATING:
        if show_tombstone and _tombstone_visible(assistant):
            services.tombstone_seen(obj=assistant)
            return assistant
        services.assistant_purge(assistant=assistant)
        assistant = None
    if assistant is None:
        raise errors.NotFound(f'Assistant "{name}" not found.')
    return assistant


def assistant_list_for_key(*, key: ApiKey) -> QuerySet[Assistant]:
    queryset = Assistant.objects.exclude(status=Assistant.Status.TERMINATING).order_by("created_at", "id")
    scope = api_key_scope(key)
    if scope is not None:
        queryset = queryset.filter(name__in=scope)
    return queryset


# --- files ------------------------------------------------------------------------------------------------------


def file_get(*, assistant: Assistant, file_id: str, show_tombstone: bool = False) -> File:
    """A file of `assistant` (whose access the caller has already checked through its own door)."""
    file = File.objects.filter(assistant=assistant, file_id=file_id).first()
    if file is not None and file.status == File.Status.DELETING:
        if show_tombstone and _tombstone_visible(file):
            services.tombstone_seen(obj=file)
            return file
        services.file_purge(file=file)
        file = None
    if file is None:
        raise errors.NotFound(f"File with id {file_id}  not found in provided assistant")
    return file


def files_matching(*, assistant: Assistant, metadata_filter: MetadataFilter | None) -> list[File]:
    """The assistant's files (not being deleted) whose metadata passes the filter, oldest first."""
    files = File.objects.filter(assistant=assistant).exclude(status=File.Status.DELETING).order_by("created_on", "id")
    if metadata_filter is None:
        return list(files)
    return [file for file in files if metadata_filter.matches(file.metadata)]


@dataclass(frozen=True)
class Page:
    items: list
    next_token: str | None


def _encode_cursor(position: int) -> str:
    return base64.urlsafe_b64encode(f"after:{position}".encode()).decode().rstrip("=")


def _decode_cursor(token: str | None) -> int:
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        prefix, _, value = text.partition(":")
        if prefix != "after":
            raise ValueError(prefix)
        return int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise errors.InvalidArgument("pagination_token is not valid; pass the token of a previous page") from None


def paginate(items: list, *, limit: int | None, token: str | None) -> Page:
    """Offset pages over an already ordered list; the token encodes the offset, opaque to clients."""
    start = _decode_cursor(token)
    if limit is None:
        return Page(items=items[start:], next_token=None)
    end = start + limit
    return Page(items=items[start:end], next_token=_encode_cursor(end) if end < len(items) else None)


def file_list(
    *, assistant: Assistant, metadata_filter: MetadataFilter | None, limit: int | None = None, token: str | None = None
) -> Page:
    return paginate(files_matching(assistant=assistant, metadata_filter=metadata_filter), limit=limit, token=token)


# --- operations -------------------------------------------------------------------------------------------------


def operation_get(*, assistant: Assistant, operation_id: str) -> Operation:
    operation = Operation.objects.filter(assistant=assistant, operation_id=operation_id).first()
    if operation is None:
        raise errors.NotFound(f"Operation {operation_id} not found.")
    return operation


def operation_list(
    *,
    assistant: Assistant,
    operation_type: str | None = None,
    status: str | None = None,
    limit: int | None = None,
    token: str | None = None,
) -> Page:
    queryset = Operation.objects.filter(assistant=assistant)
    if operation_type:
        if operation_type not in Operation.Type.values:
            raise errors.InvalidArgument(
                f'Unknown operation_type "{operation_type}": use one of {", ".join(Operation.Type.values)}'
            )
        queryset = queryset.filter(operation_type=operation_type)
    if status:
        if status not in Operation.Status.values:
            raise errors.InvalidArgument(f'Unknown status "{status}": use one of {", ".join(Operation.Status.values)}')
        queryset = queryset.filter(status=status)
    return paginate(list(queryset), limit=limit, token=token)


# --- rooms --------------------------------------------------------------------------------------------------------


def display_name(user: object) -> str:
    """How a member is named to other members and to the model."""
    if user is None:
        return "Someone"
    full = user.get_full_name().strip()  # type: ignore[attr-defined]
    return full or user.get_username()  # type: ignore[attr-defined]


def room_manager(*, user: object) -> bool:
    """Superusers and staff with `manage_rooms`: they configure and review every room, and may stop any answer."""
    if user is None or not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return False
    return bool(
        getattr(user, "is_superuser", False)
        or (getattr(user, "is_staff", False) and user.has_perm("assistant_chat.manage_rooms"))  # type: ignore[attr-defined]
    )


def message_may_stop(*, user: object, message: Message) -> bool:
    """Who may stop a streaming answer: the member who asked for it (the question's author, or who regenerated
    it), the author of the question it answers, and room managers. Not any member: a stop throws away an answer
    others may be waiting for, so it is the asker's (or a manager's) call, and it is recorded (`stopped_by`)."""
    user_id = getattr(user, "pk", None)
    if user_id is None:
        return False
    if message.requested_by_id == user_id or room_manager(user=user):
        return True
    if message.reply_to_id is None:
        return False
    return Message.objects.filter(pk=message.reply_to_id, author_id=user_id).exists()


def rooms_for_user(*, user: object) -> QuerySet[Room]:
    """Rooms `user` may enter: a member directly or through a group. Superusers and room managers (staff with the
    `manage_rooms` permission, who configure and review every room) enter every room. Archived rooms are closed to
    everyone."""
    if user is None or not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return Room.objects.none()
    rooms = Room.objects.filter(archived=False).select_related("assistant")
    if getattr(user, "is_superuser", False) or (
        getattr(user, "is_staff", False) and user.has_perm("assistant_chat.manage_rooms")  # type: ignore[attr-defined]
    ):
        return rooms
    return rooms.filter(Q(members=user) | Q(member_groups__user=user)).distinct()


def room_get_for_user(*, user: object, slug: str | None = None, room_id: int | str | None = None) -> Room:
    """The one door to a room for pages, sockets and frames. A room the user may not enter is reported exactly
    like one that does not exist, so strangers learn nothing."""
    rooms = rooms_for_user(user=user)
    if slug is not None:
        room = rooms.filter(slug=slug).first()
    elif room_id is not None:
        room = rooms.filter(pk=room_id).first()
    else:
        room = None
    if room is None:
        raise errors.NotFound("Room not found.")
    return room


def conversation_get_for_user(*, user: object, conversation_id: object, room: Room | None = None) -> Conversation:
    """A conversation in a room `user` may enter (and in `room`, when given)."""
    if isinstance(conversation_id, bool) or not isinstance(conversation_id, int | str):
        raise errors.InvalidArgument("conversation_id must be a number")
    try:
        number = int(conversation_id)
    except ValueError:
        raise errors.InvalidArgument("conversation_id must be a number") from None
    conversation = Conversation.objects.select_related("room", "room__assistant").filter(pk=number).first()
    if conversation is None or (room is not None and conversation.room_id != room.pk):
        raise errors.NotFound("Conversation not found.")
    room_get_for_user(user=user, room_id=conversation.room_id)
    return conversation


def conversation_list(*, room: Room, limit: int = 200, archived: bool = False) -> list[Conversation]:
    """A room's conversations, newest activity first: those not archived, or (`archived`) only archived ones."""
    rows = Conversation.objects.filter(room=room, archived=archived).order_by("-updated_at", "-id")
    return list(rows[:limit])


def conversation_archived_count(*, room: Room) -> int:
    return Conversation.objects.filter(room=room, archived=True).count()


MESSAGE_PAGE = 50


def message_page(
    *, conversation: Conversation, before_id: int | None = None, limit: int = MESSAGE_PAGE
) -> tuple[list[Message], bool]:
    """The newest `limit` places (slots) of a conversation before `before_id`, oldest first, each as its latest
    version with `version_ids` (every version's id, first to latest) set on it; and whether older places exist.
    A constant number of queries whatever the conversation's length (a 5,000-message room opens as fast)."""
    roots_qs = Message.objects.filter(conversation=conversation, version_of__isnull=True)
    if before_id is not None:
        roots_qs = roots_qs.filter(pk__lt=before_id)
    roots = list(roots_qs.order_by("-id").values_list("pk", flat=True)[: limit + 1])
    has_more = len(roots) > limit
    roots = sorted(roots[:limit])
    versions: dict[int, list[int]] = {root: [root] for root in roots}
    later = Message.objects.filter(version_of_id__in=roots).order_by("version_of_id", "version")
    for pk, root in later.values_list("pk", "version_of_id"):
        versions[root].append(pk)
    shown = {versions[root][-1]: root for root in roots}
    rows = {m.pk: m for m in Message.objects.filter(pk__in=shown).select_related("author", "stopped_by")}
    page = []
    for root in roots:
        message = rows[versions[root][-1]]
        message.version_ids = versions[root]  # type: ignore[attr-defined]
        page.append(message)
    return page, has_more


def message_places_before(*, conversation: Conversation, before_id: int) -> int:
    """How many places (first versions) come before `before_id`: the "N earlier messages" a page leaves out."""
    return Message.objects.filter(conversation=conversation, version_of__isnull=True, pk__lt=before_id).count()


def message_versions(*, message: Message) -> list[int]:
    """The ids of every version of a message's place, first to latest."""
    root = message.version_of_id or message.pk
    later = Message.objects.filter(version_of_id=root).order_by("version").values_list("pk", flat=True)
    return [root, *later]


def feedback_counts(*, message_ids: list[int]) -> dict[int, dict[str, int]]:
    """Up and down votes per answer version (every id present, zero when none)."""
    counts = {message_id: {"up": 0, "down": 0} for message_id in message_ids}
    rows = (
        MessageFeedback.objects.filter(message_id__in=message_ids)
        .values_list("message_id", "value")
        .annotate(n=Count("id"))
        .order_by()
    )
    for message_id, value, n in rows:
        counts[message_id][value] = n
    return counts


def feedback_of(*, user: object, message_ids: list[int]) -> dict[int, dict[str, str]]:
    """A member's own votes on these answer versions: {id: {"value", "comment"}}."""
    user_id = getattr(user, "pk", None)
    if user_id is None:
        return {}
    rows = MessageFeedback.objects.filter(message_id__in=message_ids, user_id=user_id)
    return {f.message_id: {"value": f.value, "comment": f.comment} for f in rows}


def conversation_messages(*, conversation: Conversation, after_id: int = 0) -> list[Message]:
    """The conversation's messages in order, with authors (for speaker names)."""
    return list(
        Message.objects.filter(conversation=conversation, pk__gt=after_id).select_related("author").order_by("id")
    )


def conversation_history(*, conversation_id: int, before_id: int, limit: int) -> list[Message]:
    """The last `limit` messages the model sees for the question `before_id` answers (or, for an answer, the
    question it replies to): earlier questions each followed by its answer, then the question itself. Each earlier
    place counts with its latest version only (an edited question, a regenerated answer); questions queued after
    it are not part of its turn; answers with no text and failed answers are left out."""
    question_id = before_id
    reply_to = Message.objects.filter(pk=before_id, role=Message.Role.ASSISTANT).values_list("reply_to_id", flat=True)
    if reply_to and reply_to[0]:
        question_id = reply_to[0]
    question = Message.objects.select_related("author").filter(pk=question_id).first()
    if question is None:
        return []
    place = question.version_of_id or question.pk
    rows = (
        Message.objects.filter(conversation_id=conversation_id)
        .annotate(place=Coalesce("version_of_id", "id"), asked=Coalesce("reply_to__version_of_id", "reply_to_id"))
        .filter(
            Q(role=Message.Role.USER, place__lt=place)
            | Q(role=Message.Role.ASSISTANT, asked__lt=place)
            | Q(role=Message.Role.ASSISTANT, reply_to__isnull=True, pk__lt=before_id)
        )
        .exclude(Q(role=Message.Role.ASSISTANT) & (Q(content="") | Q(status=Message.Status.FAILED)))
        .select_related("author")
        .order_by("-place", "-id")
    )
    latest: dict[int, Message] = {}
    for message in rows[: limit * 3]:
        latest.setdefault(message.place, message)  # type: ignore[attr-defined]
    said = list(latest.values()) + [question]
    # An answer goes right after the question it replies to, even when questions queued while it streamed were
    # saved before it: the model reads each exchange in order.
    said.sort(
        key=lambda m: (
            (m.version_of_id or m.pk, 0)
            if m.role == Message.Role.USER
            else (getattr(m, "asked", None) or m.reply_to_id or m.pk, 1)
        )
    )
    return said[-limit:]


def turn_states(*, message_ids: list[int]) -> dict[int, TurnState]:
    """Where each of these turns stands in the database (missing ids were deleted): read by each process's
    supervisor for the turns its members watch."""
    rows = Message.objects.filter(pk__in=message_ids).values_list(
        "pk", "status", "lease_expires_at", "completed_at", "runner", "conversation_id"
    )
    return {row[0]: TurnState(*row) for row in rows}


def turns_lapsed(*, limit: int = 50) -> list[TurnState]:
    """Streaming answers whose lease lapsed: their process stopped renewing it (died, or cannot reach the
    database). The supervisors ask each one's process before ending it."""
    rows = Message.objects.filter(status=Message.Status.STREAMING, lease_expires_at__lt=timezone.now()).values_list(
        "pk", "status", "lease_expires_at", "completed_at", "runner", "conversation_id"
    )[:limit]
    return [TurnState(*row) for row in rows]


def conversations_waiting(*, older_than_seconds: float, limit: int = 50) -> list[int]:
    """Conversations with a question queued for longer than `older_than_seconds` (its turn should have started
    when the previous answer ended: the process that ran it stopped first, or started none)."""
    since = timezone.now() - timedelta(seconds=older_than_seconds)
    rows = (
        Message.objects.filter(status=Message.Status.QUEUED, created_at__lt=since)
        .values_list("conversation_id", flat=True)
        .order_by("conversation_id")
        .distinct()[:limit]
    )
    return list(rows)


def message_for_room(*, message_id: int) -> Message | None:
    """A message with its conversation and room, for the room's machinery (already authorised, or no member)."""
    return Message.objects.select_related("conversation__room", "author").filter(pk=message_id).first()


@dataclass(frozen=True)
class TurnState:
    message_id: int
    status: str
    lease_expires_at: datetime | None
    completed_at: datetime | None
    runner: str
    conversation_id: int


def room_file_get_for_user(*, user: object, room: Room, file_id: str) -> File:
    """A file a member may open from a room: the room's assistant's, available, and inside the room's filter."""
    room = room_get_for_user(user=user, room_id=room.pk)
    file = File.objects.filter(assistant_id=room.assistant_id, file_id=file_id, status=File.Status.AVAILABLE).first()
    metadata_filter = room_filter(room)
    if file is None or (metadata_filter is not None and not metadata_filter.matches(file.metadata)):
        raise errors.NotFound("File not found in this room.")
    return file


def room_filter(room: Room) -> MetadataFilter | None:
    """The room's filter, parsed (the admin validates it on save, so this does not fail for saved rooms)."""
    return room_filter_parse(room.metadata_filter)


def room_filter_parse(raw: dict | None) -> MetadataFilter | None:
    """A room filter as saved on a room or snapshotted on an answer; `InvalidArgument` if it does not parse."""
    try:
        return parse_filter(raw or None)
    except FilterError as exc:
        raise errors.InvalidArgument(f"This room's metadata filter is invalid: {exc}") from None


def room_presence_names(user_ids: set[int]) -> list[str]:
    users = get_user_model().objects.filter(pk__in=user_ids)
    return sorted(display_name(user) for user in users)


def message_get_for_user(*, user: object, message_id: int, room: Room | None = None) -> Message:
    """A message in a conversation of a room `user` may enter (and in `room`, when given)."""
    message = Message.objects.select_related("conversation").filter(pk=message_id).first()
    if message is None or (room is not None and message.conversation.room_id != room.pk):
        raise errors.NotFound("Message not found.")
    room_get_for_user(user=user, room_id=message.conversation.room_id)
    return message


def message_max_chars() -> int:
    return settings.CHAT_MESSAGE_MAX_CHARS


@dataclass(frozen=True)
class FilePage:
    number: int | None
    text: str
    first: bool = True  # the first segment of its page (where the page's anchor goes)


@dataclass(frozen=True)
class FileView:
    """One window of a file's text for the viewer: at most `VIEWER_SEGMENTS_PER_VIEW` stored segments."""

    pages: list[FilePage]
    part: int  # this window, from 0
    parts: int  # how many windows the file has
    page_count: int  # distinct page numbers in the file (0 for unpaged formats)
    from_chunks: bool  # the file was ingested before pages were stored: its chunks are shown instead


VIEWER_SEGMENTS_PER_VIEW = 20


def file_view(*, file: File, page: int | None = None, part: int | None = None) -> FileView:
    """The window of `file`'s stored text that holds `page` (or window `part`, or the first): what ingestion
    stored, never the upload parsed again, and never more than a window at a time."""
    from django.db.models import Count

    from .models import Chunk
    from .models import FilePage as StoredPage

    size = VIEWER_SEGMENTS_PER_VIEW
    segments = StoredPage.objects.filter(file=file)
    stats = segments.aggregate(n=Count("id"), pages=Count("number", distinct=True))
    total, from_chunks = stats["n"], False
    if total == 0:  # ingested before viewer pages were stored: its chunks (which overlap a little) stand in
        from_chunks = True
        total = Chunk.objects.filter(file=file).count()
    parts = max(1, -(-total // size))
    if part is None and page:
        if from_chunks:
            at = next(
                (
                    c.ordinal
                    for c in Chunk.objects.filter(file=file).only("ordinal", "pages")
                    if page in (c.pages or [])
                ),
                0,
            )
        else:
            found = segments.filter(number__gte=page).order_by("ordinal").values_list("ordinal", flat=True).first()
            at = found or 0
        part = at // size
    part = min(max(part or 0, 0), parts - 1)
    window = slice(part * size, (part + 1) * size)
    if from_chunks:
        rows = [
            FilePage((chunk.pages or [None])[0], chunk.text)
            for chunk in Chunk.objects.filter(file=file).order_by("ordinal")[window]
        ]
    else:
        seen: set[int | None] = set()
        if part:  # a page continued from the previous window is not a first segment
            before = segments.filter(ordinal__lt=part * size).order_by("-ordinal").values_list("number", flat=True)
            seen.add(before.first())
        rows = []
        for stored in segments.order_by("ordinal")[window]:
            rows.append(FilePage(stored.number, stored.text, first=stored.number not in seen))
            seen.add(stored.number)
    return FileView(
        pages=rows, part=part, parts=parts, page_count=0 if from_chunks else stats["pages"], from_chunks=from_chunks
    )


# --- staff review (admin) -------------------------------------------------------------------------------------------


def staff_uses_every_assistant(*, user: object) -> bool:
    """Superusers and room managers (`manage_rooms`) may use every assistant in the admin."""
    if user is None or not getattr(user, "is_active", False) or not getattr(user, "is_staff", False):
        return False
    return bool(getattr(user, "is_superuser", False) or user.has_perm("assistant_chat.manage_rooms"))  # type: ignore[attr-defined]


def assistants_for_staff(*, user: object) -> QuerySet[Assistant]:
    """The assistants a staff user may put in rooms, see the files of in the admin, count filters over and scope
    API keys to: every one for superusers and room managers, otherwise those whose *room staff* (or room staff
    groups) include the user. Non-staff users get none."""
    if user is None or not getattr(user, "is_active", False) or not getattr(user, "is_staff", False):
        return Assistant.objects.none()
    if staff_uses_every_assistant(user=user):
        return Assistant.objects.all()
    granted = Assistant.objects.filter(Q(room_staff=user) | Q(room_staff_groups__user=user)).values("pk")
    return Assistant.objects.filter(pk__in=granted)


def staff_may_use_assistant(*, user: object, assistant_id: int | None) -> bool:
    return assistant_id is not None and assistants_for_staff(user=user).filter(pk=assistant_id).exists()


def rooms_managed_by(*, user: object) -> QuerySet[Room]:
    """Rooms whose settings, conversations and usage a staff user may see in the admin, archived ones included:
    every room for superusers and holders of `manage_rooms` (the "Room managers" group), otherwise the rooms the
    staff user is a member of. Non-staff users manage nothing (they never reach the admin)."""
    if user is None or not getattr(user, "is_active", False) or not getattr(user, "is_staff", False):
        return Room.objects.none()
    if getattr(user, "is_superuser", False) or user.has_perm("assistant_chat.manage_rooms"):  # type: ignore[attr-defined]
        return Room.objects.all()
    return Room.objects.filter(pk__in=Room.objects.filter(Q(members=user) | Q(member_groups__user=user)).values("pk"))


def room_usage_authors(*, rooms: QuerySet[Room]) -> QuerySet:
    """The people of `rooms` (members, members through groups, and whoever started a conversation there), for the
    review filters. Read from memberships, not from the messages, so it costs the same at any history size."""
    room_ids = rooms.values("pk")
    return (
        get_user_model()
        .objects.filter(
            Q(pk__in=Room.members.through.objects.filter(room_id__in=room_ids).values("user_id"))
            | Q(groups__chat_rooms__in=room_ids)
            | Q(pk__in=Conversation.objects.filter(room__in=room_ids).values("created_by_id"))
        )
        .distinct()
        .order_by("username")
    )


@dataclass(frozen=True)
class RoomSearchHit:
    message_id: int
    conversation_id: int
    conversation_title: str
    snippet: str  # escaped, with the matching words in <mark>


def room_search(*, user: object, room: Room, query: str, limit: int = 50) -> list[RoomSearchHit]:
    """The newest messages of `room` matching `query`, for a member of that room (checked here again)."""
    from .review.search import search_messages

    room = room_get_for_user(user=user, room_id=room.pk)
    hits = search_messages(query=query, room_ids=[room.pk], limit=limit)
    titles = dict(Conversation.objects.filter(pk__in={hit.conversation_id for hit in hits}).values_list("pk", "title"))
    return [
        RoomSearchHit(hit.message_id, hit.conversation_id, titles.get(hit.conversation_id, ""), hit.snippet)
        for hit in hits
    ]
