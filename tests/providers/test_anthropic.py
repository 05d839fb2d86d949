"""AnthropicProvider against a local server replaying the Messages API stream."""

from __future__ import annotations

import time

import pytest

from assistant_chat.providers.anthropic import AnthropicProvider
from assistant_chat.providers.base import (
    Delta,
    Message,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderNotConfigured,
    ProviderRequest,
    ProviderStreamError,
    ProviderTimeout,
    Usage,
)
from tests.providers import fixtures
from tests.providers.replay_server import ReplayServer, Reply, collect, collect_until_error, error_reply, events, pieces

REQUEST = ProviderRequest(
    model="claude-sonnet-4-5",
    messages=(Message("system", "You are terse."), Message("user", "Say hello")),
    temperature=0.7,
    max_tokens=1024,
)


def _error(kind: str, message: str) -> dict[str, object]:
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"}


def _event(name: str, data: str) -> bytes:
    return f"event: {name}\ndata: {data}\n\n".encode()


def make(server: ReplayServer, **kwargs: object) -> AnthropicProvider:
    return AnthropicProvider("anthropic", server.url, "sk-ant-test", **kwargs)  # type: ignore[arg-type]


async def test_normal_stream(server: ReplayServer) -> None:
    server.script(Reply(chunks=events(fixtures.ANTHROPIC_STREAM)))
    text, finish = await collect(make(server).stream(REQUEST))
    assert text == "Hello — héllo!"
    assert finish.reason == "stop"
    assert finish.usage == Usage(prompt_tokens=21, completion_tokens=9)  # input from message_start, output cumulative
    assert finish.model == "claude-sonnet-4-5-20250929"


async def test_stream_in_one_byte_reads(server: ReplayServer) -> None:
    server.script(Reply(chunks=pieces(fixtures.ANTHROPIC_STREAM, 1)))
    text, finish = await collect(make(server).stream(REQUEST))
    assert (text, finish.reason) == ("Hello — héllo!", "stop")


async def test_request_shape(server: ReplayServer) -> None:
    server.script(Reply(chunks=[fixtures.ANTHROPIC_STREAM]))
    request = ProviderRequest(
        model="claude-sonnet-4-5",
        messages=(
            Message("assistant", "Hi! Ask me anything."),  # a greeting before any user turn is dropped
            Message("system", "You are terse."),
            Message("user", "First"),
            Message("user", "Second"),
            Message("assistant", "Answer"),
            Message("system", "Cite sources."),
            Message("user", "Third"),
        ),
        temperature=1.5,
    )
    await collect(make(server).stream(request))
    [recorded] = server.requests
    assert (recorded.method, recorded.path) == ("POST", "/v1/messages")
    assert recorded.headers["x-api-key"] == "sk-ant-test"
    assert recorded.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in recorded.headers
    assert recorded.body == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 4096,
        "messages": [
            {"role": "user", "content": "First\n\nSecond"},
            {"role": "assistant", "content": "Answer"},
            {"role": "user", "content": "Third"},
        ],
        "stream": True,
        "system": "You are terse.\n\nCite sources.",
        "temperature": 1.0,  # clamped to Anthropic's 0..1
    }


async def test_base_url_with_v1_and_no_temperature(server: ReplayServer) -> None:
    server.script(Reply(chunks=[fixtures.ANTHROPIC_STREAM]))
    provider = AnthropicProvider("anthropic", f"{server.url}/v1/", "sk-ant-test", max_tokens_default=77)
    await collect(provider.stream(ProviderRequest(model="claude-opus-4-7", messages=(Message("user", "Hi"),))))
    assert server.requests[0].path == "/v1/messages"
    body = server.requests[0].body
    assert "temperature" not in body and "system" not in body
    assert body["max_tokens"] == 77


async def test_api_version_2026_sends_bearer_and_no_sampling(server: ReplayServer) -> None:
    server.script(Reply(chunks=[fixtures.ANTHROPIC_STREAM]))
    await collect(make(server, anthropic_version="2026-10-21").stream(REQUEST))
    [recorded] = server.requests
    assert recorded.headers["authorization"] == "Bearer sk-ant-test"
    assert "x-api-key" not in recorded.headers
    assert "temperature" not in recorded.body


async def test_thinking_deltas_are_not_answer_text(server: ReplayServer) -> None:
    stream = b"".join(
        [
            _event(
                "message_start",
                '{"type":"message_start","message":{"model":"claude-x","usage":{"input_tokens":5,"cache_read_input_tokens":100,"output_tokens":1}}}',
            ),
            _event(
                "content_block_start",
                '{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}',
            ),
            _event(
                "content_block_delta",
                '{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me think"}}',
            ),
            _event(
                "content_block_delta",
                '{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQB"}}',
            ),
            _event("content_block_stop", '{"type":"content_block_stop","index":0}'),
            _event(
                "content_block_start",
                '{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}',
            ),
            _event(
                "content_block_delta",
                '{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"42"}}',
            ),
            _event("some_future_event", '{"type":"some_future_event"}'),
            _event(
                "message_delta",
                '{"type":"message_delta","delta":{"stop_reason":"max_tokens"},"usage":{"output_tokens":30}}',
            ),
            _event("message_stop", '{"type":"message_stop"}'),
        ]
    )
    server.script(Reply(chunks=[stream]))
    text, finish = await collect(make(server).stream(REQUEST))
    assert (text, finish.reason, finish.usage) == ("42", "length", Usage(prompt_tokens=105, completion_tokens=30))


@pytest.mark.parametrize(
    ("stop_reason", "expected"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("new_reason", "stop"),
    ],
)
async def test_stop_reason_mapping(server: ReplayServer, stop_reason: str, expected: str) -> None:
    stream = fixtures.ANTHROPIC_STREAM.replace(b'"stop_reason":"end_turn"', f'"stop_reason":"{stop_reason}"'.encode())
    server.script(Reply(chunks=[stream]))
    _text, finish = await collect(make(server).stream(REQUEST))
    assert finish.reason == expected


async def test_error_event_in_the_middle_of_the_stream(server: ReplayServer) -> None:
    server.script(Reply(chunks=events(fixtures.ANTHROPIC_MIDSTREAM_ERROR)))
    text, error = await collect_until_error(make(server).stream(REQUEST))
    assert text == "Hel"
    assert isinstance(error, ProviderStreamError)
    assert "Overloaded" in str(error)
    assert error.details["error"]["type"] == "overloaded_error"


async def test_truncated_stream_before_message_stop(server: ReplayServer) -> None:
    server.script(Reply(chunks=events(fixtures.ANTHROPIC_STREAM)[:-1]))  # everything but message_stop
    text, error = await collect_until_error(make(server).stream(REQUEST))
    assert text == "Hello — héllo!"
    assert isinstance(error, ProviderStreamError)


async def test_429_with_retry_after_is_retried(server: ReplayServer) -> None:
    server.script(
        error_reply(429, _error("rate_limit_error", "Too many requests"), {"retry-after": "1"}),
        Reply(chunks=events(fixtures.ANTHROPIC_STREAM)),
    )
    started = time.monotonic()
    text, _finish = await collect(make(server).stream(REQUEST))
    assert text == "Hello — héllo!"
    assert len(server.requests) == 2
    assert time.monotonic() - started >= 0.9


async def test_529_overloaded_is_retried(server: ReplayServer) -> None:
    server.script(
        error_reply(529, _error("overloaded_error", "Overloaded")), Reply(chunks=events(fixtures.ANTHROPIC_STREAM))
    )
    text, _finish = await collect(make(server).stream(REQUEST))
    assert text == "Hello — héllo!"
    assert len(server.requests) == 2


async def test_400_is_a_bad_request_and_not_retried(server: ReplayServer) -> None:
    server.script(error_reply(400, _error("invalid_request_error", "max_tokens: Field required")))
    _text, error = await collect_until_error(make(server).stream(REQUEST))
    assert isinstance(error, ProviderBadRequest)
    assert "max_tokens: Field required" in str(error)
    assert len(server.requests) == 1


async def test_401_is_an_auth_error(server: ReplayServer) -> None:
    server.script(error_reply(401, _error("authentication_error", "invalid x-api-key")))
    _text, error = await collect_until_error(make(server).stream(REQUEST))
    assert isinstance(error, ProviderAuthError)
    assert "invalid x-api-key" in str(error)
    assert len(server.requests) == 1


async def test_missing_key_is_not_configured(server: ReplayServer) -> None:
    _text, error = await collect_until_error(AnthropicProvider("anthropic", server.url, "").stream(REQUEST))
    assert isinstance(error, ProviderNotConfigured)
    assert server.requests == []


async def test_hang_past_the_read_timeout(server: ReplayServer) -> None:
    server.script(Reply(chunks=events(fixtures.ANTHROPIC_STREAM)[:4], hang_after=5))
    text, error = await collect_until_error(make(server, timeout=0.5).stream(REQUEST))
    assert text == "Hello"
    assert isinstance(error, ProviderTimeout)


async def test_aclose_after_the_first_delta_drops_the_connection(server: ReplayServer) -> None:
    server.script(Reply(chunks=events(fixtures.ANTHROPIC_STREAM), delay=0.3))
    stream = make(server).stream(REQUEST)
    assert await anext(stream) == Delta("Hello")
    await stream.aclose()
    recorded = await server.wait_done()
    assert recorded.disconnected_early and not recorded.finished
