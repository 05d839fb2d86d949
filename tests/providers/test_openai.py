"""OpenAIProvider against a local server replaying OpenAI, vLLM, Ollama and llama.cpp streams."""

from __future__ import annotations

import asyncio
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
    ProviderUnavailable,
    Usage,
)
from assistant_chat.providers.openai import OpenAIProvider, is_reasoning_model
from tests.providers import fixtures
from tests.providers.replay_server import ReplayServer, Reply, collect, collect_until_error, error_reply, events, pieces

REQUEST = ProviderRequest(
    model="gpt-4o-mini",
    messages=(Message("system", "You are terse."), Message("user", "Say hello")),
    temperature=0.7,
    max_tokens=256,
)


def make(server: ReplayServer, **kwargs: object) -> OpenAIProvider:
    return OpenAIProvider("openai", f"{server.url}/v1", "sk-test", **kwargs)  # type: ignore[arg-type]


async def test_normal_stream(server: ReplayServer) -> None:
    server.script(Reply(chunks=events(fixtures.OPENAI_STREAM)))
    text, finish = await collect(make(server).stream(REQUEST))
    assert text == "Hello — héllo!"
    assert finish.reason == "stop"
    assert finish.usage == Usage(prompt_tokens=12, completion_tokens=5)
    assert finish.model == "gpt-4o-mini-2024-07-18"


@pytest.mark.parametrize("size", [1, 7])
async def test_stream_cut_into_small_network_reads(server: ReplayServer, size: int) -> None:
    server.script(Reply(chunks=pieces(fixtures.OPENAI_STREAM, size)))
    text, finish = await collect(make(server).stream(REQUEST))
    assert (text, finish.reason, finish.usage) == ("Hello — héllo!", "stop", Usage(12, 5))


async def test_request_shape(server: ReplayServer) -> None:
    server.script(Reply(chunks=[fixtures.OPENAI_STREAM]))
    await collect(make(server, extra_headers={"OpenAI-Project": "proj_1"}).stream(REQUEST))
    [request] = server.requests
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.headers["openai-project"] == "proj_1"
    assert request.body == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hello"}],
        "stream": True,
        "max_tokens": 256,
        "temperature": 0.7,
        "stream_options": {"include_usage": True},
    }


@pytest.mark.parametrize("model", ["o1", "o3-pro", "o4-mini", "gpt-5", "gpt-5-mini", "gpt-5.1", "openai/gpt-5-nano"])
async def test_reasoning_models_get_max_completion_tokens_and_no_temperature(server: ReplayServer, model: str) -> None:
    server.script(Reply(chunks=[fixtures.OPENAI_STREAM]))
    request = ProviderRequest(model=model, messages=REQUEST.messages, temperature=0.7, max_tokens=4096)
    await collect(make(server).stream(request))
    body = server.requests[0].body
    assert body["max_completion_tokens"] == 4096
    assert "max_tokens" not in body and "temperature" not in body
    assert body["messages"][0]["role"] == "system"


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "omni-moderation-latest", "llama3.2"])
def test_other_models_are_not_reasoning_models(model: str) -> None:
    assert not is_reasoning_model(model)


async def test_local_server_without_key_or_stream_options(server: ReplayServer) -> None:
    server.script(Reply(chunks=events(fixtures.OLLAMA_STREAM)))
    provider = OpenAIProvider("ollama", f"{server.url}/v1", None, send_stream_options=False)
    request = ProviderRequest(model="llama3.2", messages=REQUEST.messages)
    text, finish = await collect(provider.stream(request))
    # Ollama: role and the first text in one chunk, a separate finish chunk.
    assert (text, finish.reason, finish.usage, finish.model) == ("Hello there!", "stop", Usage(11, 3), "llama3.2")
    [recorded] = server.requests
    assert "authorization" not in recorded.headers
    assert recorded.body == {"model": "llama3.2", "messages": recorded.body["messages"], "stream": True}


@pytest.mark.parametrize(
    ("fixture", "model"),
    [(fixtures.VLLM_STREAM, "Qwen/Qwen3-8B"), (fixtures.LLAMACPP_STREAM, "qwen3-8b")],
)
async def test_vllm_and_llamacpp_streams(server: ReplayServer, fixture: bytes, model: str) -> None:
    # vLLM: finish_reason on the last text chunk plus `stop_reason`; llama.cpp: null content and `timings`.
    server.script(Reply(chunks=events(fixture)))
    text, finish = await collect(make(server).stream(REQUEST))
    assert (text, finish.reason, finish.usage, finish.model) == ("Hello there!", "stop", Usage(11, 3), model)


async def test_finish_reason_mapping_and_eof_after_finish_without_done(server: ReplayServer) -> None:
    chunk = b'data: {"choices":[{"index":0,"delta":{"content":"cut"},"finish_reason":"length"}]}\n\n'
    server.script(Reply(chunks=[chunk]))
    text, finish = await collect(make(server).stream(REQUEST))
    assert (text, finish.reason, finish.usage, finish.model) == ("cut", "length", None, None)


async def test_error_in_the_middle_of_the_stream(server: ReplayServer) -> None:
    server.script(Reply(chunks=events(fixtures.OPENAI_MIDSTREAM_ERROR)))
    text, error = await collect_until_error(make(server).stream(REQUEST))
    assert text == "Hel"
    assert isinstance(error, ProviderStreamError)
    assert "The server had an error while processing your request" in str(error)


@pytest.mark.parametrize("fixture", [fixtures.VLLM_MIDSTREAM_ERROR, fixtures.LLAMACPP_MIDSTREAM_ERROR])
async def test_local_server_errors_mid_stream(server: ReplayServer, fixture: bytes) -> None:
    # vLLM sends [DONE] after its error event: it must not turn the failure into a success.
    server.script(Reply(chunks=events(fixture)))
    _text, error = await collect_until_error(make(server).stream(REQUEST))
    assert isinstance(error, ProviderStreamError)


async def test_truncated_stream(server: ReplayServer) -> None:
    server.script(Reply(chunks=events(fixtures.OPENAI_STREAM)[:3]))
    text, error = await collect_until_error(make(server).stream(REQUEST))
    assert text == "Hello — héllo!"
    assert isinstance(error, ProviderStreamError)
    assert "ended before" in str(error)


async def test_connection_dropped_mid_body(server: ReplayServer) -> None:
    server.script(Reply(chunks=events(fixtures.OPENAI_STREAM)[:2], abort=True))
    text, error = await collect_until_error(make(server).stream(REQUEST))
    assert text == "Hello"
    assert isinstance(error, ProviderStreamError)
    assert len(server.requests) == 1  # never retried once the stream has started


async def test_429_with_retry_after_is_retried(server: ReplayServer) -> None:
    rate_limited = {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}
    server.script(error_reply(429, rate_limited, {"retry-after": "1"}), Reply(chunks=events(fixtures.OPENAI_STREAM)))
    started = time.monotonic()
    text, _finish = await collect(make(server).stream(REQUEST))
    assert text == "Hello — héllo!"
    assert len(server.requests) == 2
    assert time.monotonic() - started >= 0.9


async def test_429_insufficient_quota_is_not_retried(server: ReplayServer) -> None:
    quota = {"error": {"message": "You exceeded your current quota", "type": "insufficient_quota"}}
    server.script(error_reply(429, quota, {"retry-after": "1"}))
    _text, error = await collect_until_error(make(server).stream(REQUEST))
    assert isinstance(error, ProviderRateLimited)
    assert error.retry_after == 1.0
    assert len(server.requests) == 1


async def test_5xx_is_retried(server: ReplayServer) -> None:
    server.script(error_reply(503, b"<html>Service Unavailable</html>"), Reply(chunks=events(fixtures.OPENAI_STREAM)))
    text, _finish = await collect(make(server).stream(REQUEST))
    assert text == "Hello — héllo!"
    assert len(server.requests) == 2


async def test_5xx_until_attempts_run_out(server: ReplayServer) -> None:
    server.script(error_reply(500, {"error": {"message": "The server had an error", "type": "server_error"}}))
    _text, error = await collect_until_error(make(server, max_retries=1).stream(REQUEST))
    assert isinstance(error, ProviderUnavailable)
    assert (error.status, error.retryable) == (500, True)
    assert len(server.requests) == 2


async def test_400_is_a_bad_request_and_not_retried(server: ReplayServer) -> None:
    message = (
        "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead."
    )
    body = {"error": {"message": message, "type": "invalid_request_error", "param": "max_tokens", "code": None}}
    server.script(error_reply(400, body))
    _text, error = await collect_until_error(make(server).stream(REQUEST))
    assert isinstance(error, ProviderBadRequest)
    assert message in str(error)
    assert error.status == 400 and not error.retryable
    assert len(server.requests) == 1


async def test_401_is_an_auth_error(server: ReplayServer) -> None:
    server.script(error_reply(401, {"error": "Unauthorized"}))  # vLLM's bare-string error
    _text, error = await collect_until_error(make(server).stream(REQUEST))
    assert isinstance(error, ProviderAuthError)
    assert "Unauthorized" in str(error)
    assert len(server.requests) == 1


async def test_hang_mid_stream_past_the_read_timeout(server: ReplayServer) -> None:
    server.script(Reply(chunks=events(fixtures.OPENAI_STREAM)[:2], hang_after=5))
    text, error = await collect_until_error(make(server, timeout=0.5).stream(REQUEST))
    assert text == "Hello"
    assert isinstance(error, ProviderTimeout)
    assert not error.retryable
    assert len(server.requests) == 1


async def test_hang_before_the_response_is_a_timeout_and_not_retried(server: ReplayServer) -> None:
    server.script(Reply(chunks=[fixtures.OPENAI_STREAM], hang_before=5))
    _text, error = await collect_until_error(make(server, timeout=0.5).stream(REQUEST))
    assert isinstance(error, ProviderTimeout)
    assert len(server.requests) == 1


async def test_connection_refused_is_unavailable(server: ReplayServer) -> None:
    url = server.url
    await server.__aexit__()
    provider = OpenAIProvider("openai", f"{url}/v1", "sk-test", max_retries=0)
    _text, error = await collect_until_error(provider.stream(REQUEST))
    assert isinstance(error, ProviderUnavailable) and error.retryable


async def test_json_instead_of_a_stream(server: ReplayServer) -> None:
    body = {"error": {"message": "streaming is disabled here", "type": "invalid_request_error"}}
    server.script(
        Reply(
            chunks=[b'{"error": {"message": "streaming is disabled here"}}'],
            headers={"content-type": "application/json"},
        )
    )
    _text, error = await collect_until_error(make(server).stream(REQUEST))
    assert isinstance(error, ProviderStreamError)
    assert body["error"]["message"] in str(error)


async def test_aclose_after_the_first_delta_drops_the_connection(server: ReplayServer) -> None:
    server.script(Reply(chunks=events(fixtures.OPENAI_STREAM), delay=0.3))
    stream = make(server).stream(REQUEST)
    assert await anext(stream) == Delta("Hello")
    await stream.aclose()
    recorded = await server.wait_done()
    assert recorded.disconnected_early and not recorded.finished


async def test_cancelling_the_consuming_task_drops_the_connection(server: ReplayServer) -> None:
    server.script(Reply(chunks=events(fixtures.OPENAI_STREAM), delay=0.3))
    first = asyncio.Event()

    async def consume() -> None:
        async for item in make(server).stream(REQUEST):
            if isinstance(item, Delta):
                first.set()

    task = asyncio.create_task(consume())
    await first.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    recorded = await server.wait_done()
    assert recorded.disconnected_early and not recorded.finished


async def test_gateway_error_event_without_error_key(server: ReplayServer) -> None:
    first, second, *_rest = events(fixtures.OPENAI_STREAM)
    server.script(Reply(chunks=[first, second, b'event: error\ndata: {"message":"upstream connect error"}\n\n']))
    text, error = await collect_until_error(make(server).stream(REQUEST))
    assert text == "Hello"
    assert isinstance(error, ProviderStreamError)
    assert "upstream connect error" in str(error)
