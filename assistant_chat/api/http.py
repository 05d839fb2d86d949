"""The HTTP plumbing every API view shares: key authentication, API versions, JSON bodies, the error envelope.

`api_view` wraps a view so that it runs only for a valid key, and so that any `errors.ChatError` (or a body
that is not JSON) becomes Pinecone's envelope `{"error": {"code", "message"}, "status"}` with a 4xx status;
the SDKs retry 5xx, so nothing the caller got wrong may surface as one.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from .. import errors, selectors
from ..models import ApiKey

logger = logging.getLogger(__name__)

# Versions from 2026-04 on report file mutations as asynchronous operations (202); older ones get file objects.
ASYNC_OPERATIONS_SINCE = "2026-04"
LEGACY_VERSION = "2025-10"


def error_response(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}, "status": status}, status=status)


@csrf_exempt
def unknown_path(request: HttpRequest) -> JsonResponse:
    """A path under /assistant/ that the API does not serve: a 404 in the envelope, not Django's HTML page."""
    return error_response(404, "NOT_FOUND", f"{request.method} {request.path} is not part of this API")


def api_version(request: HttpRequest) -> str:
    """The client's API version; old clients send the header twice (joined by a comma) or not at all."""
    raw = request.META.get("HTTP_X_PINECONE_API_VERSION", "")
    return raw.split(",")[0].strip() or LEGACY_VERSION


def uses_operations(request: HttpRequest) -> bool:
    return api_version(request) >= ASYNC_OPERATIONS_SINCE


def presented_key(request: HttpRequest) -> str | None:
    api_key = request.META.get("HTTP_API_KEY")
    if api_key:
        return api_key
    authorization = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


def json_body(request: HttpRequest) -> dict[str, Any]:
    """The request's JSON object body; a missing, malformed, oversized or non-object body is the caller's error."""
    try:
        raw = request.body
    except RequestDataTooBig:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raise errors.PayloadTooLarge(f"The request body is larger than {limit / 1048576:.0f} MB") from None
    if not raw:
        raise errors.InvalidArgument("The request body must be a JSON object")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.InvalidArgument(f"The request body is not valid JSON: {exc}") from None
    except RecursionError:  # thousands of nested brackets: Python's parser gives up before any limit of ours
        raise errors.InvalidArgument(
            f"The request body is nested too deeply: at most {MAX_JSON_DEPTH} levels of arrays and objects"
        ) from None
    if not isinstance(body, dict):
        raise errors.InvalidArgument("The request body must be a JSON object")
    check_json_value(body, "The request body")
    return body


# Deeper than any request of the API needs (a filter of nested $and/$or included), shallow enough that code
# walking a body recursively never meets Python's recursion limit.
MAX_JSON_DEPTH = 64


def check_json_value(value: Any, what: str) -> None:
    """Refuse nesting deeper than MAX_JSON_DEPTH and text that cannot be stored (a lone surrogate such as "\ud800",
    which JSON escapes allow but UTF-8 does not), walking the value without recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise errors.InvalidArgument(
                    f"{what} is nested too deeply: at most {MAX_JSON_DEPTH} levels of arrays and objects"
                )
            if isinstance(item, dict):
                for key, child in item.items():
                    _check_text(key, what)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            _check_text(item, what)


def _check_text(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise errors.InvalidArgument(
            f"{what} has text that is not valid Unicode (a lone surrogate at character {exc.start})"
        ) from None


def query_int(request: HttpRequest, name: str, *, low: int, high: int) -> int | None:
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise errors.InvalidArgument(f"{name} must be an integer between {low} and {high}") from None
    if not low <= value <= high:
        raise errors.InvalidArgument(f"{name} must be between {low} and {high}, got {value}")
    return value


ApiHandler = Callable[..., HttpResponse]


def api_view(methods: dict[str, ApiHandler]) -> Callable[..., HttpResponse]:
    """One URL, a handler per HTTP method; each handler gets `(request, key, **url_kwargs)`."""

    @csrf_exempt
    def view(request: HttpRequest, **kwargs: Any) -> HttpResponse:
        handler = methods.get(request.method or "")
        if handler is None:
            response = error_response(405, "INVALID_ARGUMENT", f"Method {request.method} is not allowed here")
            response["Allow"] = ", ".join(methods)
            return response
        try:
            key: ApiKey = selectors.api_key_authenticate(raw_key=presented_key(request))
            return handler(request, key, **kwargs)
        except errors.ChatError as exc:
            return error_response(exc.status, exc.code, exc.message)
        except Exception:
            logger.exception("API %s %s failed", request.method, request.path)
            return error_response(500, "UNKNOWN", "Internal server error")

    functools.update_wrapper(view, next(iter(methods.values())))
    return view
