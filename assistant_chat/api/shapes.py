"""Response shapes of the Pinecone-compatible API, one function per object, as the official clients decode them.

Every field a client generation reads is always present (old clients crash on a missing `host`, `multimodal`
or `percent_done`); timestamps are ISO-8601 strings; sizes are integers. See
shared/reference/pinecone-assistant-api.md §1b.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.core import signing
from django.http import HttpRequest
from django.urls import reverse

from ..knowledge.retrieval import Snippet
from ..models import Assistant, File, Operation

SIGNED_URL_SALT = "assistant_chat.file_download"


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.isoformat().replace("+00:00", "Z")


def public_host(request: HttpRequest) -> str:
    """The absolute origin clients reach this server at; the SDKs need the scheme spelled out."""
    if settings.ASSISTANT_PUBLIC_HOST:
        return settings.ASSISTANT_PUBLIC_HOST
    return request.build_absolute_uri("/").rstrip("/")


def assistant_json(assistant: Assistant, request: HttpRequest) -> dict[str, Any]:
    return {
        "name": assistant.name,
        # null only when none were ever given: an update to "" answers "", as Pinecone does.
        "instructions": assistant.instructions,
        "metadata": assistant.metadata or {},
        "status": assistant.status,
        "host": public_host(request),
        "region": assistant.region,
        "created_at": iso(assistant.created_at),
        "updated_at": iso(assistant.updated_at),
    }


def file_json(file: File, request: HttpRequest, *, include_url: bool = False) -> dict[str, Any]:
    return {
        "name": file.name,
        "id": file.file_id,
        "metadata": file.metadata or None,
        "created_on": iso(file.created_on),
        "updated_on": iso(file.updated_on),
        "status": file.status,
        "percent_done": file.percent_done,
        "signed_url": signed_url(file, request) if include_url else None,
        "error_message": file.error_message or None,
        "size": int(file.size),
        "multimodal": bool(file.multimodal),
        "content_hash": file.content_hash or None,
        "crc32c_hash": file.crc32c_hash or None,  # pinecone 10.x reads this one (as `content_hash`)
    }


def signed_url(file: File, request: HttpRequest) -> str:
    token = signing.dumps({"f": file.pk, "h": file.content_hash}, salt=SIGNED_URL_SALT, compress=True)
    path = reverse("api-file-download", kwargs={"token": token})
    return public_host(request) + path


def operation_json(operation: Operation) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": operation.operation_id,
        "operation_type": operation.operation_type,
        "file_id": operation.file_id or None,
        "status": operation.status,
        "created_on": iso(operation.created_on),
        "percent_complete": int(operation.percent_complete),
    }
    if operation.status != Operation.Status.PROCESSING:
        body["completed_on"] = iso(operation.completed_on)
    if operation.status == Operation.Status.FAILED:
        body["error_message"] = operation.error_message or "The operation failed"
    if operation.status == Operation.Status.COMPLETED:
        body["ingestion_units"] = None
    return body


def snippet_json(snippet: Snippet, request: HttpRequest) -> dict[str, Any]:
    reference: dict[str, Any] = {"type": snippet.file.kind, "file": file_json(snippet.file, request)}
    if snippet.file.kind in (File.Kind.PDF, File.Kind.DOCX):
        reference["pages"] = snippet.pages
    return {"type": "text", "content": snippet.text, "score": snippet.score, "reference": reference}


def pagination_json(body: dict[str, Any], next_token: str | None) -> dict[str, Any]:
    # The last page omits `pagination`: 10.x breaks on {"next": null}.
    if next_token:
        body["pagination"] = {"next": next_token}
    return body
