"""Anthropic Messages API streaming (`POST {base_url}/v1/messages`).

Called only by the turn engine; imports no Django and nothing outside this package. The stream ends at
`message_stop`; EOF before it is a truncated answer and an error, and `event: error` fails the answer at once.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from typing import Any

from .base import (
    Delta,
    Finish,
    FinishReason,
    ProviderBadRequest,
    ProviderNotConfigured,
    ProviderRequest,
    StreamItem,
    Usage,
)
from .http import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    HttpSettings,
    body_tail,
    load_event,
    open_stream,
    split_system,
    stream_error,
    truncated,
)
from .sse import aiter_events

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.anthropic.com"
# From this API version on, the key goes in `Authorization: Bearer` and sampling parameters are gone.
_BEARER_VERSION = "2026-10-21"

_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",  # no exact equivalent
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


class AnthropicProvider:
    """System messages go to the top-level `system` field; turns are merged to alternate, starting with a user turn.

    Temperature is clamped to Anthropic's 0..1 (OpenAI and Gemini allow 0..2; the caller validates the room's
    value against the provider too) and omitted when None or under API version 2026-10-21.
    """

    def __init__(
        self,
        name: str,
        base_url: str,
        api_key: str | None,
        *,
        anthropic_version: str = "2023-06-01",
        max_tokens_default: int = 4096,
        timeout: float = DEFAULT_READ_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        max_retries: int = 2,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self.anthropic_version = anthropic_version
        self.max_tokens_default = max_tokens_default
        self._api_key = api_key
        self._extra_headers = dict(extra_headers or {})
        self._http = HttpSettings(
            name, read_timeout=timeout, connect_timeout=connect_timeout, max_attempts=max_retries + 1
        )

    @property
    def _bearer(self) -> bool:
        return self.anthropic_version >= _BEARER_VERSION  # ISO dates compare as strings

    def _headers(self) -> dict[str, str]:
        headers = {"anthropic-version": self.anthropic_version, "Accept": "text/event-stream"}
        if self._bearer:
            headers["Authorization"] = f"Bearer {self._api_key}"
        else:
            headers["x-api-key"] = str(self._api_key)
        return {**headers, **self._extra_headers}

    def _body(self, request: ProviderRequest) -> dict[str, Any]:
        system, turns = split_system(request.messages)
        if not turns:
            raise ProviderBadRequest(f"{self.name}: no user message to answer")
        body: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens or self.max_tokens_default,  # required by the API
            "messages": [{"role": role, "content": content} for role, content in turns],
            "stream": True,
        }
        if system:
            body["system"] = system
        if request.temperature is not None and not self._bearer:
            body["temperature"] = min(max(request.temperature, 0.0), 1.0)
        return body

    async def stream(self, request: ProviderRequest) -> AsyncGenerator[StreamItem, None]:
        """Yield `Delta`s then one `Finish`; raise a `ProviderError`. `aclose()` drops the connection at once."""
        if not self._api_key:
            raise ProviderNotConfigured(f"{self.name}: no API key configured")
        body = self._body(request)
        reason: FinishReason = "stop"
        tokens: dict[str, int] = {}
        model: str | None = None
        stopped = False
        async with (
            open_stream(
                self._http,
                f"{self.base_url}/v1/messages",
                body=body,
                headers=self._headers(),
                on_accepted=request.on_accepted,
            ) as response,
            aclosing(aiter_events(response)) as events,
            body_tail() as tail,
        ):
            async for event, data in events:
                if not data or tail.ended:
                    continue
                obj = load_event(self.name, data)
                kind = obj.get("type") or event
                if kind == "content_block_delta":
                    delta = obj.get("delta") or {}
                    # Only text; thinking, signature and tool-input deltas are not part of the answer.
                    if delta.get("type") == "text_delta" and delta.get("text"):
                        yield Delta(delta["text"])
                elif kind == "message_start":
                    message = obj.get("message") or {}
                    model = message.get("model") or model
                    _merge_usage(tokens, message.get("usage"))
                elif kind == "message_delta":
                    if stop_reason := (obj.get("delta") or {}).get("stop_reason"):
                        reason = self._finish(stop_reason)
                    _merge_usage(tokens, obj.get("usage"))  # cumulative: replaces, never adds
                elif kind == "message_stop":
                    stopped = True
                    tail.end()  # read on to the end of the body, so the connection can be reused
                elif kind == "error":
                    raise stream_error(self.name, obj.get("error"))
                # ping, content_block_start/stop and event types added later: nothing to do.
        if not stopped:
            raise truncated(self.name)
        usage = None
        if tokens:
            prompt = sum(
                tokens.get(k, 0) for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
            )
            usage = Usage(prompt_tokens=prompt, completion_tokens=tokens.get("output_tokens", 0))
        yield Finish(reason=reason, usage=usage, model=model)

    def _finish(self, value: str) -> FinishReason:
        if value not in _FINISH:
            logger.warning("%s: unknown stop_reason %r, treated as stop", self.name, value)
        return _FINISH.get(value, "stop")


def _merge_usage(tokens: dict[str, int], raw: Any) -> None:
    if isinstance(raw, dict):
        tokens.update({key: value for key, value in raw.items() if isinstance(value, int)})
