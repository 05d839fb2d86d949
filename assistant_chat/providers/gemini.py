"""Google Gemini API streaming (`POST {base_url}/v1beta/models/{model}:streamGenerateContent?alt=sse`).

Called only by the turn engine; imports no Django and nothing outside this package. There is no end marker: the
stream ends at EOF after a chunk with `finishReason`, and an error after HTTP 200 arrives as a raw, unframed JSON
object, which the SSE decoder keeps in `stray_lines`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from typing import Any
from urllib.parse import quote

from .base import (
    Delta,
    Finish,
    FinishReason,
    ProviderBadRequest,
    ProviderNotConfigured,
    ProviderRequest,
    ProviderStreamError,
    StreamItem,
    Usage,
)
from .http import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    HttpSettings,
    load_event,
    open_stream,
    split_system,
    stream_error,
    truncated,
)
from .sse import SSEDecoder, aiter_events

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"

_FILTERED = {
    "SAFETY",
    "RECITATION",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "LANGUAGE",
    "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT",
    "IMAGE_RECITATION",
    "MODEL_ARMOR",
}
_FAILED = {
    "MALFORMED_FUNCTION_CALL",
    "UNEXPECTED_TOOL_CALL",
    "TOO_MANY_TOOL_CALLS",
    "MISSING_THOUGHT_SIGNATURE",
    "MALFORMED_RESPONSE",
}


class GeminiProvider:
    """System messages go to `systemInstruction`; the assistant role is called `model`; turns are merged to
    alternate, starting with a user turn. Temperature is clamped to 0..2. Finish.model holds `modelVersion`.
    """

    def __init__(
        self,
        name: str,
        base_url: str,
        api_key: str | None,
        *,
        api_version: str = "v1beta",
        timeout: float = DEFAULT_READ_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        max_retries: int = 2,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.api_version = api_version
        self._api_key = api_key
        self._extra_headers = dict(extra_headers or {})
        self._http = HttpSettings(
            name, read_timeout=timeout, connect_timeout=connect_timeout, max_attempts=max_retries + 1
        )

    def _url(self, model: str) -> str:
        model = quote(model.removeprefix("models/"), safe="-._~")
        # alt=sse matters: without it the endpoint streams one big JSON array instead.
        return f"{self.base_url}/{self.api_version}/models/{model}:streamGenerateContent?alt=sse"

    def _headers(self) -> dict[str, str]:
        # The header, not ?key=: a key in the URL ends up in access logs.
        return {"x-goog-api-key": str(self._api_key), "Accept": "text/event-stream", **self._extra_headers}

    def _body(self, request: ProviderRequest) -> dict[str, Any]:
        system, turns = split_system(request.messages)
        if not turns:
            raise ProviderBadRequest(f"{self.name}: no user message to answer")
        body: dict[str, Any] = {
            "contents": [
                {"role": "model" if role == "assistant" else "user", "parts": [{"text": text}]} for role, text in turns
            ]
        }
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        config: dict[str, Any] = {}
        if request.temperature is not None:
            config["temperature"] = min(max(request.temperature, 0.0), 2.0)
        if request.max_tokens is not None:
            config["maxOutputTokens"] = request.max_tokens
        if config:
            body["generationConfig"] = config
        return body

    async def stream(self, request: ProviderRequest) -> AsyncGenerator[StreamItem, None]:
        """Yield `Delta`s then one `Finish`; raise a `ProviderError`. `aclose()` drops the connection at once."""
        if not self._api_key:
            raise ProviderNotConfigured(f"{self.name}: no API key configured")
        body = self._body(request)
        decoder = SSEDecoder()
        reason: FinishReason | None = None
        usage: Usage | None = None
        model: str | None = None
        produced = called = False
        async with (
            open_stream(
                self._http,
                self._url(request.model),
                body=body,
                headers=self._headers(),
                on_accepted=request.on_accepted,
            ) as response,
            aclosing(aiter_events(response, decoder)) as events,
        ):
            async for _event, data in events:
                if not data:
                    continue
                chunk = load_event(self.name, data)
                if chunk.get("error"):
                    raise stream_error(self.name, chunk["error"])
                model = chunk.get("modelVersion") or model
                if isinstance(chunk.get("usageMetadata"), dict):  # running totals: the last one wins
                    usage = _usage(chunk["usageMetadata"])
                candidates = chunk.get("candidates") or []
                if not candidates:
                    if (chunk.get("promptFeedback") or {}).get("blockReason"):
                        reason = "content_filter"  # the prompt itself was blocked
                    continue
                candidate = candidates[0]
                for part in (candidate.get("content") or {}).get("parts") or []:
                    called = called or "functionCall" in part
                    text = part.get("text")
                    if isinstance(text, str) and text and not part.get("thought"):  # thought summaries are not answer
                        produced = True
                        yield Delta(text)
                if candidate.get("finishReason"):
                    reason = self._finish(candidate["finishReason"], produced, called)
        if error := _unframed_error(decoder.stray_lines):
            raise stream_error(self.name, error)
        if reason is None:
            raise truncated(self.name, decoder.stray_lines)
        yield Finish(reason=reason, usage=usage, model=model)

    def _finish(self, value: str, produced: bool, called: bool) -> FinishReason:
        if value == "STOP":
            return "tool_calls" if called else "stop"  # Gemini reports STOP for function calls
        if value in ("MAX_TOKENS", "CONTINUATION"):
            return "length"
        if value in _FILTERED:
            return "content_filter"
        if value in _FAILED and not produced:
            raise ProviderStreamError(f"{self.name}: the upstream failed to answer ({value})")
        if value not in _FAILED:
            logger.warning("%s: unknown finishReason %r, treated as stop", self.name, value)
        return "stop"


def _usage(meta: dict[str, Any]) -> Usage:
    def count(key: str) -> int:
        return int(meta.get(key) or 0)

    return Usage(
        prompt_tokens=count("promptTokenCount") + count("toolUsePromptTokenCount"),
        completion_tokens=count("candidatesTokenCount") + count("thoughtsTokenCount"),  # as OpenAI counts reasoning
    )


def _unframed_error(lines: list[str]) -> Any:
    """The `error` of a raw JSON object written outside SSE framing (Gemini's mid-stream failure), or None."""
    if not lines:
        return None
    try:
        obj = json.loads("\n".join(lines))
    except ValueError:
        return None
    return obj.get("error") if isinstance(obj, dict) else None
