"""A remote Pinecone assistant as the upstream, through its OpenAI-compatible `chat/completions` endpoint.

Called only by the turn engine; imports no Django and nothing outside this package. The stream is Chat Completions
framed as `data:{json}` with no `[DONE]` and no usage: EOF after a `finish_reason` is the normal end, EOF before one
is a truncated answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from .base import ProviderBadRequest, ProviderRequest
from .http import DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT
from .openai import OpenAIProvider


class PineconeAssistantProvider(OpenAIProvider):
    """`POST {base_url}/assistant/chat/{assistant_name}/chat/completions` with `Api-Key`.

    `base_url` is the assistant's data-plane host (e.g. `https://prod-1-data.ke.pinecone.io`). The endpoint accepts
    only user and assistant turns, so system messages, and with them the request's context snippets, are dropped:
    the remote assistant has its own instructions and does its own retrieval over its own files. There is no
    output cap either (`max_tokens` is not sent). `filter` is a metadata filter sent with every request.
    """

    _key_required = True

    def __init__(
        self,
        name: str,
        base_url: str,
        api_key: str | None,
        assistant_name: str,
        *,
        filter: Mapping[str, Any] | None = None,
        api_version: str = "2025-10",
        timeout: float = DEFAULT_READ_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        max_retries: int = 2,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        headers = {"Api-Key": str(api_key), "X-Pinecone-Api-Version": api_version, **(extra_headers or {})}
        super().__init__(
            name,
            base_url,
            api_key,
            timeout=timeout,
            connect_timeout=connect_timeout,
            max_retries=max_retries,
            send_stream_options=False,
            extra_headers=headers,
        )
        self.assistant_name = assistant_name
        self.filter = dict(filter) if filter else None

    def _url(self) -> str:
        return f"{self.base_url}/assistant/chat/{quote(self.assistant_name, safe='')}/chat/completions"

    def _headers(self) -> dict[str, str]:
        return {"Accept": "text/event-stream", **self._extra_headers}  # Api-Key, not Authorization: Bearer

    def _body(self, request: ProviderRequest) -> dict[str, Any]:
        # Empty or whitespace-only content is a 400 upstream.
        messages = [
            {"role": m.role, "content": m.content} for m in request.messages if m.role != "system" and m.content.strip()
        ]
        if not messages:
            raise ProviderBadRequest(f"{self.name}: no user message to answer")
        body: dict[str, Any] = {"messages": messages, "model": request.model, "stream": True}
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if self.filter:
            body["filter"] = self.filter
        return body
