"""Data plane, chat: `POST /assistant/chat/<name>` (standard, structured citations) and
`POST /assistant/chat/<name>/chat/completions` (OpenAI-compatible, inline citations), default or streaming.

Everything is validated before a stream starts, so errors are ordinary 4xx JSON responses, and a stream starts
only once the model's provider has accepted the request, so that its refusal is an HTTP error too. Streams are
`data:{json}` lines with no `[DONE]` (the Pinecone plugin crashes on it), ended by closing the connection;
the standard stream sends blank-line heartbeats while the model is silent. The turn runs in a task owned by
the response: if the client goes away, the task is cancelled and the upstream connection closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from .. import errors, selectors, turns
from ..models import Assistant
from ..providers import base as provider_base
from .http import error_response, json_body, presented_key
from .requests import parse_messages, parse_metadata_filter, parse_snippet_size, parse_top_k
from .shapes import file_json

logger = logging.getLogger(__name__)

RunSync = Callable[..., Awaitable[Any]]


async def in_request_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """Django's way: the request's own thread (what the URLconf views use, and what the test client expects)."""
    return await sync_to_async(fn)(*args)


async def respond(request: HttpRequest, name: str, *, standard: bool, run_sync: RunSync) -> HttpResponseBase:
    """Both chat endpoints, for both ways in: Django's URLconf (the views below) and the lean ASGI app
    (`asgi_chat`), which passes a `run_sync` whose threads keep their database connection.

    POST only; the key is checked first, then the body; everything that can fail does so before a stream starts,
    as Pinecone's error envelope (see http.api_view).
    """
    if request.method != "POST":
        refusal = error_response(405, "INVALID_ARGUMENT", f"Method {request.method} is not allowed here")
        refusal["Allow"] = "POST"
        return refusal
    try:
        # One trip to a thread for all the database work (key, assistant, models, retrieval): each trip costs.
        prepared, stream = await run_sync(_authorize_and_prepare, presented_key(request), name, request, standard)
        response: HttpResponseBase
        if standard:
            response = await _chat(request, prepared, stream)
        else:
            response = await _chat_completions(prepared, stream)
        # What retrieval took, for operators (and browsers' developer tools); the rest of the time is the model's.
        response["Server-Timing"] = f'retrieval;dur={prepared.retrieval_seconds * 1000:.2f};desc="context retrieval"'
        return response
    except errors.ChatError as exc:
        return error_response(exc.status, exc.code, exc.message)
    except provider_base.ProviderError as exc:
        return provider_error_response(exc)
    except Exception:
        logger.exception("API %s %s failed", request.method, request.path)
        return error_response(500, "UNKNOWN", "Internal server error")


@csrf_exempt
async def chat(request: HttpRequest, name: str) -> HttpResponseBase:
    return await respond(request, name, standard=True, run_sync=in_request_thread)


@csrf_exempt
async def chat_completions(request: HttpRequest, name: str) -> HttpResponseBase:
    return await respond(request, name, standard=False, run_sync=in_request_thread)


def provider_error_response(exc: provider_base.ProviderError) -> JsonResponse:
    """An upstream failure before anything streamed. Client-side mistakes stay 4xx so SDKs do not retry them."""
    status, code, message = _provider_error(exc)
    response = error_response(status, code, message)
    if isinstance(exc, provider_base.ProviderRateLimited) and exc.retry_after:
        response["Retry-After"] = str(int(exc.retry_after + 0.999))
    return response


def _provider_error(exc: provider_base.ProviderError) -> tuple[int, str, str]:
    if isinstance(exc, provider_base.ProviderBadRequest):
        return 400, "INVALID_ARGUMENT", f"The model rejected the request: {exc.message}"
    if isinstance(exc, provider_base.ProviderAuthError | provider_base.ProviderNotConfigured):
        return 400, "FAILED_PRECONDITION", f"The model provider refused this server's key: {exc.message}"
    if isinstance(exc, provider_base.ProviderRateLimited):
        return 429, "TOO_MANY_REQUESTS", f"The model provider is rate limiting: {exc.message}"
    if isinstance(exc, provider_base.ProviderTimeout):
        return 504, "DEADLINE_EXCEEDED", f"The model did not answer in time: {exc.message}"
    return 502, "UNAVAILABLE", f"The model provider failed: {exc.message}"


def _stream_error(exc: provider_base.ProviderError) -> dict[str, str]:
    """A failure after the stream started, said in-band with the code its HTTP error would have had."""
    _status, code, _message = _provider_error(exc)
    return {"code": code, "message": exc.message}


def _bool(body: dict, name: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise errors.InvalidArgument(f"{name} must be true or false")
    return value


def _authorize_and_prepare(
    raw_key: str | None, name: str, request: HttpRequest, standard: bool
) -> tuple[turns.PreparedTurn, bool]:
    # Key, scope and assistant in one query; errors still come in the API's order: key, body, then assistant.
    access = selectors.api_key_authenticate_for(raw_key=raw_key, name=name)
    body = json_body(request)
    assistant = selectors.assistant_get_for_access(access=access, name=name)
    return _prepare(assistant, body, standard=standard)


def _prepare(assistant: Assistant, body: dict, *, standard: bool) -> tuple[turns.PreparedTurn, bool]:
    messages = parse_messages(body.get("messages"))
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise errors.InvalidArgument("model must be a string")
    stream = _bool(body, "stream")
    options = body.get("context_options") or {}
    if not isinstance(options, dict):
        raise errors.InvalidArgument("context_options must be an object")
    json_response = _bool(body, "json_response") if standard else False
    if json_response and stream:
        raise errors.InvalidArgument("json_response cannot be used with stream")
    request = turns.TurnRequest(
        assistant=assistant,
        messages=[turns.TurnMessage(role=m.role, content=m.content) for m in messages],
        model=model or None,
        temperature=body.get("temperature"),
        metadata_filter=parse_metadata_filter(body.get("filter")),
        top_k=parse_top_k(options.get("top_k", body.get("top_k")) if standard else None),
        snippet_size=parse_snippet_size(options.get("snippet_size") if standard else None),
        include_highlights=_bool(body, "include_highlights") if standard else False,
        json_response=json_response,
    )
    return turns.prepare_turn(request), stream


def _sse(payload: dict) -> str:
    return "data:" + json.dumps(payload, separators=(",", ":")) + "\n\n"


def _usage(usage: provider_base.Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def _citation_json(citation: turns.Citation, request: HttpRequest) -> dict[str, Any]:
    return {
        "position": citation.position,
        "references": [
            {
                "file": file_json(reference.file, request),
                "pages": list(reference.pages) or None,
                "highlight": {"type": "text", "content": reference.highlight} if reference.highlight else None,
            }
            for reference in citation.references
        ],
    }


class _Turn:
    """A turn running in a task of its own, its events read through a queue. A streaming response is started only
    once `accepted` says the upstream took the request, so that a refusal before any answer (a bad key upstream,
    429, 5xx after the retries) is an HTTP error with its status, not a 200 whose stream fails. The response's
    generator calls `cancel` in its `finally`, so a client that leaves stops the model (closing the upstream)."""

    _done = object()

    def __init__(self, prepared: turns.PreparedTurn) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._accepted = asyncio.Event()
        self._refused: provider_base.ProviderError | None = None
        self._task = asyncio.create_task(self._pump(prepared))

    async def _pump(self, prepared: turns.PreparedTurn) -> None:
        said = False
        try:
            async for event in turns.stream_turn(prepared, on_accepted=self._accepted.set):
                said = True
                self._queue.put_nowait(event)
                self._accepted.set()
        except BaseException as exc:  # handed to the consumer, who decides what the client sees
            if not said and isinstance(exc, provider_base.ProviderError):
                self._refused = exc
            self._queue.put_nowait(exc)
        finally:
            self._queue.put_nowait(self._done)
            self._accepted.set()

    async def accepted(self, within: float) -> None:
        """Return once the upstream has accepted the request or the turn has something to say, or after `within`
        seconds (a stream then starts and says what follows in-band); raise the provider's error if the turn
        failed before saying anything."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self._accepted.wait()
        if self._refused is not None:
            raise self._refused

    async def events(self, heartbeat: float | None) -> AsyncIterator[turns.TurnEvent | None]:
        """The turn's events; None is a heartbeat tick (every `heartbeat` seconds of silence)."""
        while True:
            try:
                item = await asyncio.wait_for(self._queue.get(), timeout=heartbeat)
            except TimeoutError:
                yield None
                continue
            if item is self._done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def on_this_loop(self, prepared: turns.PreparedTurn) -> _Turn:
        """This turn; or, when the response is read on another event loop than the view ran on (Django's WSGI
        handler and its test client read async streams that way; Daphne does not), a new turn on this loop: the
        first one was cancelled with its loop."""
        return self if self._task.get_loop() is asyncio.get_running_loop() else _Turn(prepared)

    def cancel(self) -> None:
        if not self._task.done():
            self._task.cancel()  # the client left: stop the model (closing the upstream) instead of letting it run


# How long a stream waits for the upstream to accept the request (connecting and retrying can take seconds) before
# it starts anyway; a failure after that is reported in the stream.
ACCEPT_WAIT_SECONDS = 15.0


async def _accepted_turn(prepared: turns.PreparedTurn) -> _Turn:
    """A running turn whose upstream has accepted the request; a refusal before any answer raises its
    `ProviderError`, which `respond` turns into an HTTP error."""
    turn = _Turn(prepared)
    try:
        await turn.accepted(ACCEPT_WAIT_SECONDS)
    except BaseException:
        turn.cancel()
        raise
    return turn


async def _chat(request: HttpRequest, prepared: turns.PreparedTurn, stream: bool) -> HttpResponseBase:
    model = prepared.spec.upstream_model
    if not stream:
        result = await turns.collect(prepared)
        return JsonResponse(
            {
                "id": prepared.id,
                "model": result.model,
                "finish_reason": result.finish_reason,
                "message": {"role": "assistant", "content": result.text},
                "citations": [_citation_json(c, request) for c in result.citations],
                "usage": _usage(result.usage),
                "context_snippet_count": len(prepared.snippets),
            }
        )

    turn = await _accepted_turn(prepared)

    async def events() -> AsyncIterator[str]:
        base = {"id": prepared.id, "model": model}
        live = turn.on_this_loop(prepared)
        try:
            yield _sse(
                {"type": "message_start", **base, "role": "assistant", "context_snippet_count": len(prepared.snippets)}
            )
            async for event in live.events(settings.CHAT_HEARTBEAT_SECONDS):
                if event is None:
                    yield "\n"  # heartbeat: a bare blank line is safe for every client
                elif isinstance(event, turns.TextDelta):
                    yield _sse({"type": "content_chunk", **base, "delta": {"content": event.text}})
                elif isinstance(event, turns.CitationFound):
                    yield _sse({"type": "citation", **base, "citation": _citation_json(event.citation, request)})
                else:
                    yield _sse(
                        {
                            "type": "message_end",
                            **base,
                            "finish_reason": event.finish_reason,
                            "usage": _usage(event.usage),
                        }
                    )
        except provider_base.ProviderError as exc:
            # Mid-stream failure: say so in-band and end without message_end, so clients see it did not finish.
            yield _sse({"type": "error", **base, "error": _stream_error(exc)})
        finally:
            live.cancel()

    return _stream_response(events())


async def _chat_completions(prepared: turns.PreparedTurn, stream: bool) -> HttpResponseBase:
    model = prepared.spec.upstream_model
    created = int(time.time())
    if not stream:
        result = await turns.collect(prepared)
        return JsonResponse(
            {
                "id": prepared.id,
                "object": "chat.completion",
                "created": created,
                "model": result.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": result.inline_text},
                        "finish_reason": result.finish_reason,
                    }
                ],
                "usage": _usage(result.usage),
            }
        )

    def chunk(delta: dict, finish_reason: str | None = None, **extra: Any) -> str:
        return _sse(
            {
                "id": prepared.id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
                **extra,
            }
        )

    turn = await _accepted_turn(prepared)

    async def events() -> AsyncIterator[str]:
        live = turn.on_this_loop(prepared)
        try:
            yield chunk({"role": "assistant", "content": ""})
            async for event in live.events(None):
                if isinstance(event, turns.TextDelta):
                    yield chunk({"content": event.text})
                elif isinstance(event, turns.CitationFound):
                    yield chunk({"content": event.citation.inline()})
                elif isinstance(event, turns.TurnResult):
                    yield chunk({}, event.finish_reason, usage=_usage(event.usage))
        except provider_base.ProviderError as exc:
            yield _sse({"error": _stream_error(exc)})
        finally:
            live.cancel()

    return _stream_response(events())


def _stream_response(events: AsyncIterator[str]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(events, content_type="text/event-stream; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response
