"""GeminiProvider against a local server replaying the streamGenerateContent?alt=sse stream (CRLF lines)."""

from __future__ import annotations

import json
import time

import pytest

from assistant_chat.providers.base import (
    Delta,
    Message,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderRateLimited,
    ProviderRequest,
    ProviderStreamError,
    ProviderTimeout,
    Usage,
)
from assistant_chat.providers.gemini import GeminiProvider
from tests.providers import fixtures
from tests.providers.replay_server import ReplayServer, Reply, collect, collect_until_error, error_reply, events, pieces

REQUEST = ProviderRequest(
    model="gemini-2.5-flash",
    messages=(Message("system", "You are terse."), Message("user", "Say hello")),
    temperature=0.7,
    max_tokens=1024,
)


def _error(code: int, status: str, message: str, **extra: object) -> dict[str, object]:
    return {"error": {"code": code, "message": message, "status": status, **extra}}


def _chunk(candidate: dict[str, object] | None = None, **top: object) -> bytes:
    obj = {"candidates": [candidate]} if candidate else {}
    return b"data: " + json.dumps({**obj, **top}).encode() + b"\r\n\r\n"


def make(server: ReplayServer, **kwargs: object) -> GeminiProvider:
    return GeminiProvider("gemini", server.url, "AIza-test", **kwargs)  # type: ignore[arg-type]


async def test_normal_stream(server: ReplayServer) -> None:
    server.script(Reply(chunks=events(fixtures.GEMINI_STREAM)))
    text, finish = await collect(make(server).stream(REQUEST))
    assert text == "Hello — héllo!"
    assert finish.reason == "stop"
    assert finish.usage == Usage(prompt_tokens=8, completion_tokens=6 + 21)  # the last usageMetadata; thoughts count
    assert finish.model == "gemini-2.5-flash"


@pytest.mark.parametrize("size", [1, 5])
async def test_crlf_stream_cut_into_small_reads(server: ReplayServer, size: int) -> None:
    server.script(Reply(chunks=pieces(fixtures.GEMINI_STREAM, size)))
    text, finish = await collect(make(server).stream(REQUEST))
    assert (text, finish.reason) == ("Hello — héllo!", "stop")


async def test_request_shape(server: ReplayServer) -> None:
    server.script(Reply(chunks=[fixtures.GEMINI_STREAM]))
    request = ProviderRequest(
        model="models/gemini-2.5-flash",
        messages=(
            Message("system", "You are terse."),
            Message("user", "Hi"),
            Message("assistant", "Hello"),
            Message("assistant", "How can I help?"),
            Message("user", "Say hello"),
        ),
        temperature=2.5,
        max_tokens=512,
    )
    await collect(make(server).stream(request))
    [recorded] = server.requests
    assert (recorded.method, recorded.path) == ("POST", "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse")
    assert recorded.headers["x-goog-api-key"] == "AIza-test"
    assert recorded.body == {
        "contents": [
            {"role": "user", "parts": [{"text": "Hi"}]},
            {"role": "model", "parts": [{"text": "Hello\n\nHow can I help?"}]},
            {"role": "user", "parts": [{"text": "Say hello"}]},
        ],
        "systemInstruction": {"parts": [{"text": "You are terse."}]},
        "generationConfig": {"temperature": 2.0, "maxOutputTokens": 512},  # clamped to 0..2
    }


async def test_no_generation_config_when_nothing_is_set(server: ReplayServer) -> None:
    server.script(Reply(chunks=[fixtures.GEMINI_STREAM]))
    await collect(make(server).stream(ProviderRequest(model="gemini-3-pro", messages=(Message("user", "Hi"),))))
    assert server.requests[0].body == {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}


@pytest.mark.parametrize(
    ("finish_reason", "expected"),
    [("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter"), ("OTHER", "stop")],
)
async def test_finish_reason_mapping(server: ReplayServer, finish_reason: str, expected: str) -> None:
    stream = fixtures.GEMINI_STREAM.replace(b'"finishReason": "STOP"', f'"finishReason": "{finish_reason}"'.encode())
    server.script(Reply(chunks=[stream]))
    _text, finish = await collect(make(server).stream(REQUEST))
    assert finish.reason == expected


async def test_thoughts_and_empty_parts_are_skipped_function_calls_finish_as_tool_calls(server: ReplayServer) -> None:
    parts = [{"text": "thinking…", "thought": True}, {"thoughtSignature": "abc"}, {"text": ""}, {"text": "Hi"}]
    call = {"functionCall": {"name": "lookup", "args": {}}}
    server.script(
        Reply(
            chunks=[
                _chunk({"content": {"parts": parts, "role": "model"}, "index": 0}),
                _chunk({"content": {"parts": [call], "role": "model"}, "finishReason": "STOP", "index": 0}),
            ]
        )
    )
    text, finish = await collect(make(server).stream(REQUEST))
    assert (text, finish.reason, finish.usage, finish.model) == ("Hi", "tool_calls", None, None)


async def test_blocked_prompt_is_content_filter(server: ReplayServer) -> None:
    server.script(Reply(chunks=[_chunk(promptFeedback={"blockReason": "SAFETY"})]))
    text, finish = await collect(make(server).stream(REQUEST))
    assert (text, finish.reason) == ("", "content_filter")


async def test_unframed_error_in_the_middle_of_the_stream(server: ReplayServer) -> None:
    server.script(Reply(chunks=events(fixtures.GEMINI_MIDSTREAM_ERROR)))
    text, error = await collect_until_error(make(server).stream(REQUEST))
    assert text == "Hel"
    assert isinstance(error, ProviderStreamError)
    assert "The model is overloaded" in str(error)
    assert error.details["error"]["code"] == 503


async def test_malformed_response_without_text_is_an_error(server: ReplayServer) -> None:
    server.script(
        Reply(chunks=[_chunk({"content": {"parts": [], "role": "model"}, "finishReason": "MALFORMED_RESPONSE"})])
    )
    _text, error = await collect_until_error(make(server).stream(REQUEST))
    assert isinstance(error, ProviderStreamError)


async def test_truncated_stream_without_finish_reason(server: ReplayServer) -> None:
    server.script(Reply(chunks=events(fixtures.GEMINI_STREAM)[:1]))
    text, error = await collect_until_error(make(server).stream(REQUEST))
    assert text == "Hello"
    assert isinstance(error, ProviderStreamError)
    assert "ended before" in str(error)


async def test_429_with_retry_after_is_retried(server: ReplayServer) -> None:
    server.script(
        error_reply(429, _error(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota"), {"retry-after": "1"}),
        Reply(chunks=events(fixtures.GEMINI_STREAM)),
    )
    started = time.monotonic()
    text, _finish = await collect(make(server).stream(REQUEST))
    assert text == "Hello — héllo!"
    assert len(server.requests) == 2
    assert time.monotonic() - started >= 0.9


async def test_429_retry_delay_from_the_body(server: ReplayServer) -> None:
    retry_info = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "47s"}
    server.script(error_reply(429, _error(429, "RESOURCE_EXHAUSTED", "Please retry in 47s", details=[retry_info])))
    _text, error = await collect_until_error(make(server).stream(REQUEST))
    # 47 s is longer than the provider waits in a chat turn: the caller gets the hint at once.
    assert isinstance(error, ProviderRateLimited)
    assert error.retry_after == 47.0
    assert len(server.requests) == 1


async def test_503_is_retried(server: ReplayServer) -> None:
    server.script(
        error_reply(503, _error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")),
        Reply(chunks=events(fixtures.GEMINI_STREAM)),
    )
    text, _finish = await collect(make(server).stream(REQUEST))
    assert text == "Hello — héllo!"
    assert len(server.requests) == 2


async def test_400_is_a_bad_request_and_not_retried(server: ReplayServer) -> None:
    server.script(error_reply(400, _error(400, "INVALID_ARGUMENT", "Please use a valid role: user, model.")))
    _text, error = await collect_until_error(make(server).stream(REQUEST))
    assert isinstance(error, ProviderBadRequest)
    assert "Please use a valid role: user, model." in str(error)
    assert len(server.requests) == 1


async def test_invalid_key_400_is_an_auth_error(server: ReplayServer) -> None:
    details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]
    server.script(error_reply(400, _error(400, "INVALID_ARGUMENT", "API key not valid.", details=details)))
    _text, error = await collect_until_error(make(server).stream(REQUEST))
    assert isinstance(error, ProviderAuthError)
    assert len(server.requests) == 1


async def test_hang_past_the_read_timeout(server: ReplayServer) -> None:
    server.script(Reply(chunks=events(fixtures.GEMINI_STREAM)[:1], hang_after=5))
    text, error = await collect_until_error(make(server, timeout=0.5).stream(REQUEST))
    assert text == "Hello"
    assert isinstance(error, ProviderTimeout)


async def test_aclose_after_the_first_delta_drops_the_connection(server: ReplayServer) -> None:
    server.script(Reply(chunks=events(fixtures.GEMINI_STREAM), delay=0.5))
    stream = make(server).stream(REQUEST)
    assert await anext(stream) == Delta("Hello")
    await stream.aclose()
    recorded = await server.wait_done()
    assert recorded.disconnected_early and not recorded.finished
