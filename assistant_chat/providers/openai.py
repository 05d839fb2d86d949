"""OpenAI Chat Completions streaming; the same class serves OpenAI-compatible servers (vLLM, Ollama /v1, llama.cpp).

Called only by the turn engine; imports no Django and nothing outside this package. The stream ends at `[DONE]`,
or at EOF after a `finish_reason`; EOF before either is a truncated answer and an error.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from typing import Any

from .base import (
    Delta,
    Finish,
    FinishReason,
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
    body_tail,
    load_event,
    open_stream,
    stream_error,
    truncated,
)
from .sse import SSEDecoder, aiter_events

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"

# o1, o3-pro, o4-mini, gpt-5, gpt-5-mini, gpt-5.1, and later generations; an "org/" prefix (gateways) is ignored.
_REASONING_MODEL = re.compile(r"^(?:o\d+(?:$|-)|gpt-(?:[5-9]|\d{2,})(?:$|[-.]))")

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",  # deprecated spelling
}


def is_reasoning_model(model: str) -> bool:
    """Reasoning models reject `max_tokens` and every sampling parameter (temperature included)."""
    return bool(_REASONING_MODEL.match(model.rsplit("/", 1)[-1].lower()))


class OpenAIProvider:
    """`POST {base_url}/chat/completions` with `stream: true`; `base_url` includes the version (`…/v1`).

    `api_key` may be None for local servers that do not check it. `send_stream_options=False` for servers that
    reject `stream_options` (usage is then None unless the server sends it anyway). `max_retries` counts retries
    after the first attempt, before any byte is streamed.
    """

    _key_required = False

    def __init__(
        self,
        name: str,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_READ_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        max_retries: int = 2,
        send_stream_options: bool = True,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.send_stream_options = send_stream_options
        self._api_key = api_key
        self._extra_headers = dict(extra_headers or {})
        self._http = HttpSettings(
            name, read_timeout=timeout, connect_timeout=connect_timeout, max_attempts=max_retries + 1
        )

    def _url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return {**headers, **self._extra_headers}

    def _body(self, request: ProviderRequest) -> dict[str, Any]:
        reasoning = is_reasoning_model(request.model)
        # `system`, not `developer`: current reasoning models accept it, and local servers know nothing else.
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        body: dict[str, Any] = {"model": request.model, "messages": messages, "stream": True}
        if request.max_tokens is not None:
            # Reasoning models accept only max_completion_tokens; Ollama reads only max_tokens.
            body["max_completion_tokens" if reasoning else "max_tokens"] = request.max_tokens
        if request.temperature is not None and not reasoning:
            body["temperature"] = request.temperature
        if self.send_stream_options:
            body["stream_options"] = {"include_usage": True}
        return body

    async def stream(self, request: ProviderRequest) -> AsyncGenerator[StreamItem, None]:
        """Yield `Delta`s then one `Finish`; raise a `ProviderError`. `aclose()` drops the connection at once."""
        if self._key_required and not self._api_key:
            raise ProviderNotConfigured(f"{self.name}: no API key configured")
        decoder = SSEDecoder()
        reason: FinishReason | None = None
        usage: Usage | None = None
        model: str | None = None
        done = False
        async with (
            open_stream(
                self._http,
                self._url(),
                body=self._body(request),
                headers=self._headers(),
                on_accepted=request.on_accepted,
            ) as response,
            aclosing(aiter_events(response, decoder)) as events,
            body_tail() as tail,
        ):
            async for event, data in events:
                if not data or tail.ended:
                    continue
                if data.strip() == "[DONE]":
                    done = True
                    tail.end()  # read on to the end of the body, so the connection can be reused
                    continue
                chunk = load_event(self.name, data)
                # Checked on every chunk: vLLM still sends [DONE] after an error; some gateways add `event: error`.
                if chunk.get("error") or event == "error":
                    raise stream_error(self.name, chunk.get("error") or chunk)
                model = chunk.get("model") or model
                if isinstance(chunk.get("usage"), dict):  # the trailing `choices: []` chunk (or vLLM per chunk)
                    usage = _usage(chunk["usage"])
                for choice in chunk.get("choices") or []:
                    if choice.get("index", 0) != 0:
                        continue
                    # Role-only first chunks, "" and null content, reasoning fields: no text to forward.
                    text = (choice.get("delta") or {}).get("content")
                    if isinstance(text, str) and text:
                        yield Delta(text)
                    if choice.get("finish_reason"):
                        reason = self._finish(choice["finish_reason"])
        if not done and reason is None:
            raise truncated(self.name, decoder.stray_lines)
        yield Finish(reason=reason or "stop", usage=usage, model=model)

    def _finish(self, value: str) -> FinishReason:
        if value == "abort":  # vLLM: the server cancelled the request; the answer is incomplete
            raise ProviderStreamError(f"{self.name}: the upstream aborted the answer")
        if value not in _FINISH:
            logger.warning("%s: unknown finish_reason %r, treated as stop", self.name, value)
        return _FINISH.get(value, "stop")


def _usage(raw: dict[str, Any]) -> Usage:
    return Usage(
        prompt_tokens=int(raw.get("prompt_tokens") or 0), completion_tokens=int(raw.get("completion_tokens") or 0)
    )
