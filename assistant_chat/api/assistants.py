"""Control plane: create, describe, list, update and delete assistants (`/assistant/assistants[/<name>]`).

Views only parse and shape; `services` writes and `selectors` reads under the key's scope.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse

from .. import errors, selectors, services
from ..models import ApiKey
from .http import api_version, api_view, json_body, query_int, uses_operations
from .shapes import assistant_json, pagination_json


def create_assistant(request: HttpRequest, key: ApiKey) -> HttpResponse:
    selectors.api_key_require_manager(key)
    body = json_body(request)
    assistant = services.assistant_create(
        name=body.get("name"),
        instructions=body.get("instructions"),
        metadata=body.get("metadata"),
        region=body.get("region") or "us",
    )
    return JsonResponse(assistant_json(assistant, request))


def list_assistants(request: HttpRequest, key: ApiKey) -> HttpResponse:
    limit = query_int(request, "limit", low=1, high=100)
    page = selectors.paginate(
        list(selectors.assistant_list_for_key(key=key)), limit=limit, token=request.GET.get("pagination_token")
    )
    body = {"assistants": [assistant_json(assistant, request) for assistant in page.items]}
    return JsonResponse(pagination_json(body, page.next_token))


def describe_assistant(request: HttpRequest, key: ApiKey, name: str) -> HttpResponse:
    # Clients before 2026-04 poll describe after DELETE and fail on an immediate 404: show them the tombstone.
    assistant = selectors.assistant_get_for_key(key=key, name=name, show_tombstone=not uses_operations(request))
    return JsonResponse(assistant_json(assistant, request))


def update_assistant(request: HttpRequest, key: ApiKey, name: str) -> HttpResponse:
    assistant = selectors.assistant_get_for_key(key=key, name=name)
    body = json_body(request)
    unknown = set(body) - {"instructions", "metadata"}
    if unknown:
        raise errors.InvalidArgument(
            f"Unknown field(s) {', '.join(sorted(unknown))}: only instructions and metadata can change"
        )
    if not body:
        raise errors.InvalidArgument("No updates provided")
    kwargs = {field: body[field] for field in ("instructions", "metadata") if field in body}
    assistant = services.assistant_update(assistant=assistant, **kwargs)
    data = assistant_json(assistant, request)
    data["assistant_name"] = assistant.name
    return JsonResponse(data)


def delete_assistant(request: HttpRequest, key: ApiKey, name: str) -> HttpResponse:
    selectors.api_key_require_manager(key)
    assistant = selectors.assistant_get_for_key(key=key, name=name)
    services.assistant_delete(assistant=assistant)
    if api_version(request) >= "2026-04":
        services.assistant_purge(assistant=assistant)  # new clients treat the next 404 as done
    return HttpResponse(status=200)


assistants_view = api_view({"GET": list_assistants, "POST": create_assistant})
assistant_view = api_view({"GET": describe_assistant, "PATCH": update_assistant, "DELETE": delete_assistant})
