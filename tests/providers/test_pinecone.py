"""PineconeAssistantProvider against a local server replaying the assistant's chat/completions stream."""

from __future__ import annotations

import time

from assistant_chat.providers.base import (
    ContextSnippet,
    Delta,
    Message,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderNotConfigured,
    ProviderRequest,
    ProviderStreamError,
    ProviderTimeout,
)
from assistant_chat.providers.pinecone import PineconeAssistantProvider
from tests.providers import fixtures
from tests.providers.replay_server import ReplayServer, Reply, collect, collect_until_error, error_reply, events, pieces

REQUEST = ProviderRequest(
    model="gpt-4o",
    messages=(
        Message("system", "Answer from the passages:\n[1] The sky is blue."),
        Message("user", "What colour is the sky?"),
    ),
    temperature=0.2,
    max_tokens=500,
    context=(ContextSnippet(number=1, text="The sky is blue.", file_name="sky.pdf", pages=(1,)),),
)
ANSWER = "The sky is blue [1, pp. 1]."


def _error(code: str, message: str, status: int) -> dict[str, object]:
    return {"error": {"code": code, "message": message}, "status": status}


def make(server: ReplayServer, **kwargs: object) -> PineconeAssistantProvider:
    return PineconeAssistantProvider("pinecone", server.url, "pcsk-test", "my-assistant", **kwargs)  # type: ignore[arg-type]


async def test_normal_stream_ends_at_eof_after_finish_reason(server: ReplayServer) -> None:
    server.script(Reply(chunks=events(fixtures.PINECONE_CC_STREAM)))
    text, finish = await collect(make(server).stream(REQUEST))
    assert text == ANSWER
    assert finish.reason == "stop"
    assert finish.usage is None  # the endpoint reports none; the caller estimates
    assert finish.model == "gpt-4o-2024-11-20"


async def test_stream_in_one_byte_reads(server: ReplayServer) -> None:
    server.script(Reply(chunks=pieces(fixtures.PINECONE_CC_STREAM, 1)))
    text, _finish = await collect(make(server).stream(REQUEST))
    assert text == ANSWER


async def test_request_shape(server: ReplayServer) -> None:
    server.script(Reply(chunks=[fixtures.PINECONE_CC_STREAM]))
    request = ProviderRequest(
        model="gpt-4o",
        messages=(*REQUEST.messages, Message("assistant", "Blue."), Message("user", "  "), Message("user", "Why?")),
        temperature=0.2,
        max_tokens=500,
    )
    await collect(make(server, filter={"genre": {"$eq": "science"}}).stream(request))
    [recorded] = server.requests
    assert (recorded.method, recorded.path) == ("POST", "/assistant/chat/my-assistant/chat/completions")
    assert recorded.headers["api-key"] == "pcsk-test"
    assert recorded.headers["x-pinecone-api-version"] == "2025-10"
    assert "authorization" not in recorded.headers
    # System text (and the context rendered into it) is dropped: the remote assistant has its own instructions.
    assert recorded.body == {
        "messages": [
            {"role": "user", "content": "What colour is the sky?"},
            {"role": "assistant", "content": "Blue."},
            {"role": "user", "content": "Why?"},
        ],
        "model": "gpt-4o",
        "stream": True,
        "temperature": 0.2,
        "filter": {"genre": {"$eq": "science"}},
    }


async def test_no_temperature_no_filter(server: ReplayServer) -> None:
    server.script(Reply(chunks=[fixtures.PINECONE_CC_STREAM]))
    await collect(make(server).stream(ProviderRequest(model="gpt-4o", messages=(Message("user", "Hi"),))))
    assert server.requests[0].body == {
        "messages": [{"role": "user", "content": "Hi"}],
        "model": "gpt-4o",
        "stream": True,
    }


async def test_only_system_messages_is_a_bad_request_without_a_call(server: ReplayServer) -> None:
    request = ProviderRequest(model="gpt-4o", messages=(Message("system", "Be nice."),))
    _text, error = await collect_until_error(make(server).stream(request))
    assert isinstance(error, ProviderBadRequest)
    assert server.requests == []


async def test_missing_key_is_not_configured(server: ReplayServer) -> None:
    provider = PineconeAssistantProvider("pinecone", server.url, None, "my-assistant")
    _text, error = await collect_until_error(provider.stream(REQUEST))
    assert isinstance(error, ProviderNotConfigured)
    assert server.requests == []


async def test_error_in_the_middle_of_the_stream(server: ReplayServer) -> None:
    first, second, _last = events(fixtures.PINECONE_CC_STREAM)
    broken = b'data:{"error":{"code":"INTERNAL","message":"Assistant backend failed"}}\n\n'
    server.script(Reply(chunks=[first, second, broken]))
    text, error = await collect_until_error(make(server).stream(REQUEST))
    assert text == ANSWER
    assert isinstance(error, ProviderStreamError)
    assert "Assistant backend failed" in str(error)


async def test_truncated_stream_before_finish_reason(server: ReplayServer) -> None:
    server.script(Reply(chunks=events(fixtures.PINECONE_CC_STREAM)[:2]))
    text, error = await collect_until_error(make(server).stream(REQUEST))
    assert text == ANSWER
    assert isinstance(error, ProviderStreamError)
    assert "ended before" in str(error)


async def test_429_with_retry_after_is_retried(server: ReplayServer) -> None:
    server.script(
        error_reply(429, _error("RESOURCE_EXHAUSTED", "Too many requests", 429), {"Retry-After": "1"}),
        Reply(chunks=events(fixtures.PINECONE_CC_STREAM)),
    )
    started = time.monotonic()
    text, _finish = await collect(make(server).stream(REQUEST))
    assert text == ANSWER
    assert len(server.requests) == 2
    assert time.monotonic() - started >= 0.9


async def test_5xx_is_retried(server: ReplayServer) -> None:
    server.script(
        error_reply(500, _error("INTERNAL", "Internal error", 500)), Reply(chunks=events(fixtures.PINECONE_CC_STREAM))
    )
    text, _finish = await collect(make(server).stream(REQUEST))
    assert text == ANSWER
    assert len(server.requests) == 2


async def test_400_is_a_bad_request_and_not_retried(server: ReplayServer) -> None:
    server.script(error_reply(400, _error("INVALID_ARGUMENT", "Message content cannot be empty", 400)))
    _text, error = await collect_until_error(make(server).stream(REQUEST))
    assert isinstance(error, ProviderBadRequest)
    assert "Message content cannot be empty" in str(error)
    assert len(server.requests) == 1


async def test_401_is_an_auth_error(server: ReplayServer) -> None:
    server.script(error_reply(401, _error("UNAUTHENTICATED", "Invalid API Key", 401)))
    _text, error = await collect_until_error(make(server).stream(REQUEST))
    assert isinstance(error, ProviderAuthError)
    assert len(server.requests) == 1


async def test_hang_past_the_read_timeout(server: ReplayServer) -> None:
    server.script(Reply(chunks=events(fixtures.PINECONE_CC_STREAM)[:2], hang_after=5))
    text, error = await collect_until_error(make(server, timeout=0.5).stream(REQUEST))
    assert text == ANSWER
    assert isinstance(error, ProviderTimeout)


async def test_aclose_after_the_first_delta_drops_the_connection(server: ReplayServer) -> None:
    server.script(Reply(chunks=events(fixtures.PINECONE_CC_STREAM), delay=0.5))
    stream = make(server).stream(REQUEST)
    assert await anext(stream) == Delta(ANSWER)
    await stream.aclose()
    recorded = await server.wait_done()
    assert recorded.disconnected_early and not recorded.finished
