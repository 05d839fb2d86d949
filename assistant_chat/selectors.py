"""Reads: the one permission-checked door to each object, and the queries pages and the API list with.

Called by API views, the admin and commands. Every lookup under an API key goes through
`assistant_get_for_key`, which checks the key's scope before it says whether the assistant exists, so a key
learns nothing about assistants it may not use. Writes live in `services`.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from . import errors, services
from .knowledge.filters import MetadataFilter
from .models import ApiKey, Assistant, File, Operation

# --- API keys ---------------------------------------------------------------------------------------------------


def api_key_authenticate(*, raw_key: str | None) -> ApiKey:
    """The live key for a presented secret, or `Unauthenticated`."""
    if not raw_key:
        raise errors.Unauthenticated("Invalid API key.")
    key = (
        ApiKey.objects.filter(key_hash=services.hash_api_key(raw_key.strip()), revoked=False)
        .prefetch_related("assistants")
        .first()
    )
    if key is None:
        raise errors.Unauthenticated("Invalid API key.")
    services.api_key_touch(key=key)
    return key


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
    assistant = Assistant.objects.filter(name=name).first()
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
