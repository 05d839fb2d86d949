"""Data plane, files and operations: upload, upsert, describe, list, delete, download; describe/list operations.

Clients from API 2026-04 on get 202 operations for mutations; older ones get file objects and, after a delete,
one sight of the `Deleting` tombstone (shared/reference/pinecone-assistant-api.md §1b).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import signing
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.views.decorators.http import require_GET

from .. import errors, selectors, services
from ..models import ApiKey, File, FileBlob
from .http import api_view, error_response, query_int, uses_operations
from .requests import parse_metadata_filter
from .shapes import SIGNED_URL_SALT, file_json, operation_json, pagination_json

CONTENT_TYPES: dict[str, str] = {
    File.Kind.TEXT: "text/plain; charset=utf-8",
    File.Kind.MARKDOWN: "text/markdown; charset=utf-8",
    File.Kind.JSON: "application/json",
    File.Kind.PDF: "application/pdf",
    File.Kind.DOCX: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}


def _read_upload(request: HttpRequest) -> tuple[str, bytes, object, bool]:
    declared = int(request.META.get("CONTENT_LENGTH") or 0)
    limit = settings.FILE_MAX_BYTES
    if declared > limit + 64 * 1024:  # refuse before reading a body far over the limit
        raise errors.PayloadTooLarge(
            f"The upload is {declared / 1048576:.1f} MB; the largest file accepted is {limit / 1048576:.1f} MB"
        )
    form, files = _parse_form(request)
    upload = files.get("file")
    if upload is None:
        raise errors.InvalidArgument('The request must be multipart/form-data with the file in a part named "file"')
    metadata = form.get("metadata")
    if metadata is None:
        metadata = request.GET.get("metadata")
    multimodal = (request.GET.get("multimodal") or "false").lower() == "true"
    return upload.name or "", upload.read(), metadata, multimodal


def _parse_form(request: HttpRequest) -> tuple[Any, Any]:
    """The multipart form, parsed by Django (streaming files to disk); a malformed form is the caller's error."""
    if request.content_type == "multipart/form-data" and not (request.content_params or {}).get("boundary"):
        raise errors.InvalidArgument(
            "The multipart/form-data Content-Type has no boundary; let your HTTP client build the form"
        )
    try:
        if request.method == "POST":
            return request.POST, request.FILES
        if request.content_type == "multipart/form-data":
            # Django parses multipart bodies for POST only; an upsert (PUT) carries the same form.
            return request.parse_file_upload(request.META, request)
        return request.POST, request.FILES
    except (MultiPartParserError, TooManyFieldsSent, TooManyFilesSent) as exc:
        raise errors.InvalidArgument(f"The multipart form could not be read: {exc}") from None
    except RequestDataTooBig:
        raise errors.PayloadTooLarge("The form's fields are too large") from None


def _store(request: HttpRequest, key: ApiKey, name: str, file_id: str | None) -> HttpResponse:
    assistant = selectors.assistant_get_for_key(key=key, name=name)
    filename, data, metadata, multimodal = _read_upload(request)
    file, operation, job = services.file_upload(
        assistant=assistant, name=filename, data=data, metadata=metadata, file_id=file_id, multimodal=multimodal
    )
    # The worker finishes small files in well under a second: a short wait spares clients a 5-second poll.
    job.wait(timeout=settings.INGEST_UPLOAD_WAIT_SECONDS)
    if uses_operations(request):
        operation.refresh_from_db()
        response = JsonResponse(operation_json(operation), status=202)
        response["Location"] = f"/operations/{assistant.name}/{operation.operation_id}"
        return response
    file.refresh_from_db()
    body = file_json(file, request)
    if file.status == File.Status.PROCESSING_FAILED:
        # The hosted service answers an upload with Processing and lets the client's poll find the failure: pinecone
        # 8.x + plugin raises only from that poll, and would return a failed file as if it were fine.
        body.update(status=File.Status.PROCESSING, error_message=None, percent_done=0.0)
    return JsonResponse(body)


def upload_file(request: HttpRequest, key: ApiKey, name: str) -> HttpResponse:
    return _store(request, key, name, None)


def upsert_file(request: HttpRequest, key: ApiKey, name: str, file_id: str) -> HttpResponse:
    return _store(request, key, name, file_id)


def list_files(request: HttpRequest, key: ApiKey, name: str) -> HttpResponse:
    assistant = selectors.assistant_get_for_key(key=key, name=name)
    metadata_filter = parse_metadata_filter(request.GET.get("filter"))
    limit = query_int(request, "limit", low=1, high=1000)
    page = selectors.file_list(
        assistant=assistant,
        metadata_filter=metadata_filter,
        limit=limit,
        token=request.GET.get("pagination_token"),
    )
    body = {"files": [file_json(file, request) for file in page.items]}
    return JsonResponse(pagination_json(body, page.next_token))


def describe_file(request: HttpRequest, key: ApiKey, name: str, file_id: str) -> HttpResponse:
    assistant = selectors.assistant_get_for_key(key=key, name=name)
    file = selectors.file_get(assistant=assistant, file_id=file_id, show_tombstone=not uses_operations(request))
    include_url = (request.GET.get("include_url") or "").lower() == "true"
    return JsonResponse(file_json(file, request, include_url=include_url and file.status != File.Status.DELETING))


def delete_file(request: HttpRequest, key: ApiKey, name: str, file_id: str) -> HttpResponse:
    assistant = selectors.assistant_get_for_key(key=key, name=name)
    file = selectors.file_get(assistant=assistant, file_id=file_id)
    operation = services.file_delete(file=file)
    if uses_operations(request):
        services.file_purge(file=file)
        return JsonResponse(operation_json(operation), status=202)
    return HttpResponse(status=200)


def describe_operation(request: HttpRequest, key: ApiKey, name: str, operation_id: str) -> HttpResponse:
    assistant = selectors.assistant_get_for_key(key=key, name=name)
    return JsonResponse(operation_json(selectors.operation_get(assistant=assistant, operation_id=operation_id)))


def list_operations(request: HttpRequest, key: ApiKey, name: str) -> HttpResponse:
    assistant = selectors.assistant_get_for_key(key=key, name=name)
    page = selectors.operation_list(
        assistant=assistant,
        operation_type=request.GET.get("operation_type"),
        status=request.GET.get("status"),
        limit=query_int(request, "limit", low=1, high=100),
        token=request.GET.get("pagination_token"),
    )
    body = {"operations": [operation_json(operation) for operation in page.items]}
    return JsonResponse(pagination_json(body, page.next_token))


@require_GET
def download_file(request: HttpRequest, token: str) -> HttpResponse:
    """The target of a `signed_url`: anyone holding the link may read the file until it expires (1 hour)."""
    try:
        claims = signing.loads(token, salt=SIGNED_URL_SALT, max_age=settings.SIGNED_URL_MAX_AGE_SECONDS)
    except signing.SignatureExpired:
        return error_response(403, "PERMISSION_DENIED", "This signed URL has expired; describe the file again")
    except signing.BadSignature:
        return error_response(403, "PERMISSION_DENIED", "This signed URL is not valid")
    file = (
        File.objects.filter(pk=claims.get("f"), content_hash=claims.get("h"))
        .exclude(status=File.Status.DELETING)
        .first()
    )
    blob = FileBlob.objects.filter(file=file).first() if file else None
    if file is None or blob is None:
        return error_response(404, "NOT_FOUND", "The file no longer exists")
    response = HttpResponse(bytes(blob.data), content_type=CONTENT_TYPES.get(file.kind, "application/octet-stream"))
    safe_name = file.name.replace('"', "").replace("\r", "").replace("\n", "")
    response["Content-Disposition"] = f'inline; filename="{safe_name}"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "sandbox"
    return response


files_view = api_view({"GET": list_files, "POST": upload_file})
file_view = api_view({"GET": describe_file, "PUT": upsert_file, "DELETE": delete_file})
operations_view = api_view({"GET": list_operations})
operation_view = api_view({"GET": describe_operation})
