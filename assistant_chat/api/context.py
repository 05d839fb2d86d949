"""Data plane, context: `POST /assistant/chat/<name>/context` returns the snippets retrieval finds.

The same retrieval feeds the chat engine, so what this endpoint shows is what a model would be given.
"""

from __future__ import annotations

import uuid

from django.http import HttpRequest, HttpResponse, JsonResponse

from .. import errors, selectors
from ..knowledge import retrieval
from ..knowledge.chunking import count_tokens
from ..models import ApiKey
from .http import api_view, json_body
from .requests import parse_messages, parse_metadata_filter, parse_snippet_size, parse_top_k
from .shapes import snippet_json


def context(request: HttpRequest, key: ApiKey, name: str) -> HttpResponse:
    assistant = selectors.assistant_get_for_key(key=key, name=name)
    body = json_body(request)
    query, messages = body.get("query"), body.get("messages")
    if (query is None) == (messages is None):
        raise errors.InvalidArgument("Provide exactly one of query or messages")
    if messages is not None:
        query = retrieval.query_from_messages(parse_messages(messages))
    elif not isinstance(query, str) or not query.strip():
        raise errors.InvalidArgument("query must be a non-empty string")
    metadata_filter = parse_metadata_filter(body.get("filter"))
    top_k = parse_top_k(body.get("top_k"))
    snippet_size = parse_snippet_size(body.get("snippet_size"))
    snippets = retrieval.retrieve(
        assistant=assistant, query=query, metadata_filter=metadata_filter, top_k=top_k, snippet_size=snippet_size
    )
    prompt_tokens = count_tokens(query) + sum(snippet.tokens for snippet in snippets)
    return JsonResponse(
        {
            "id": uuid.uuid4().hex,
            "snippets": [snippet_json(snippet, request) for snippet in snippets],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 0, "total_tokens": prompt_tokens},
        }
    )


context_view = api_view({"POST": context})
