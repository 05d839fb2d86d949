"""Shared plumbing of the upstream providers: httpx connections, HTTP error mapping, retries, message shaping.

Called only by the provider modules (and so only by the turn engine); imports no Django and nothing outside this
package. Retries happen only before the first byte of a successful response, never once a stream has started: a
retry then would duplicate text the user has already seen. One connection pool per event loop keeps upstream
connections open between turns; a turn that ends early closes its own connection, which is how the upstream
learns to stop.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import random
import ssl
import threading
import time
import urllib.request
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from .base import (
    Message,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderError,
    ProviderRateLimited,
    ProviderStreamError,
    ProviderTimeout,
    ProviderUnavailable,
)

logger = logging.getLogger(__name__)

DEFAULT_CONNECT_TIMEOUT = 10.0
# The read timeout is the longest silence between two chunks, not a deadline; reasoning models think for minutes.
DEFAULT_READ_TIMEOUT = 300.0


@dataclass(frozen=True)
class HttpSettings:
    """How one provider talks HTTP. `max_attempts` counts the first try (3 = two retries)."""

    provider: str
    read_timeout: float = DEFAULT_READ_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    max_attempts: int = 3
    backoff_base: float = 0.5  # seconds; doubled per attempt, used when the upstream gave no retry-after
    backoff_cap: float = 8.0
    retry_after_cap: float = 30.0  # a longer retry-after is not waited for: the error goes to the caller at once


# An idle pooled connection is dropped after this long: under the 5 s keep-alive of common servers (uvicorn, the
# httpx default), so that we rarely send on a connection the server is closing at the same moment.
KEEPALIVE_SECONDS = 4.0
MAX_IDLE_CONNECTIONS = 32


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Loading the CA bundle costs 30-130 ms; a new client per turn would add that to every time-to-first-token.
    return ssl.create_default_context()


def timeouts(settings: HttpSettings) -> httpx.Timeout:
    """Explicit timeouts, per request (httpx's 5 s default would cut off any thinking model)."""
    return httpx.Timeout(
        connect=settings.connect_timeout, read=settings.read_timeout, write=30.0, pool=settings.connect_timeout
    )


USER_AGENT = "assistant-chat"


class Upstream:
    """The running event loop's connections to upstreams: one pooled httpx transport per route (direct, or each
    proxy the environment names), used without `httpx.AsyncClient` on top.

    The pool keeps upstream connections open between turns (a new connection per turn cost a TCP connection, and
    with TLS a handshake, on every time-to-first-token). The client layer is left out because nothing in it is
    wanted here and it cost ~0.3 ms of CPU per turn: no cookies are kept or sent (one pool serves every caller,
    so a cookie must not pass between them), no redirects are followed, no auth flow runs. What it did that is
    wanted is done here: proxies from HTTP(S)_PROXY / ALL_PROXY / NO_PROXY, and the request timeouts.
    """

    def __init__(self) -> None:
        self._transports: dict[str | None, httpx.AsyncHTTPTransport] = {}
        self._routes: dict[tuple[str, str], str | None] = {}

    def transport(self, url: httpx.URL) -> httpx.AsyncHTTPTransport:
        route = (url.scheme, url.host)
        if route not in self._routes:
            self._routes[route] = _proxy_for(url.scheme, url.host)
        proxy = self._routes[route]
        transport = self._transports.get(proxy)
        if transport is None:
            # No cap on connections: a stream holds its connection for minutes; a cap would queue other turns.
            limits = httpx.Limits(
                max_connections=None,
                max_keepalive_connections=MAX_IDLE_CONNECTIONS,
                keepalive_expiry=KEEPALIVE_SECONDS,
            )
            transport = self._transports[proxy] = httpx.AsyncHTTPTransport(
                verify=_tls_context(), limits=limits, proxy=proxy
            )
        return transport

    async def send(self, request: httpx.Request) -> httpx.Response:
        """Send `request`; the response's body is left unread (the caller closes it)."""
        response = await self.transport(request.url).handle_async_request(request)
        response.request = request
        return response


def _proxy_for(scheme: str, host: str) -> str | None:
    """The proxy the environment names for this scheme and host, as httpx's client would pick it."""
    proxies = urllib.request.getproxies()
    proxy = proxies.get(scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


_upstreams: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Upstream] = weakref.WeakKeyDictionary()
_upstreams_lock = threading.Lock()


def shared_upstream() -> Upstream:
    """The running event loop's `Upstream`. It belongs to one loop, because its connections do."""
    loop = asyncio.get_running_loop()
    upstream = _upstreams.get(loop)
    if upstream is None:
        with _upstreams_lock:
            upstream = _upstreams.get(loop)
            if upstream is None:
                upstream = _upstreams[loop] = Upstream()
    return upstream


@functools.lru_cache(maxsize=256)
def _url(url: str) -> httpx.URL:
    return httpx.URL(url)  # parsing is pure Python and costs; a provider sends to the same few URLs


def build_request(settings: HttpSettings, url: str, body: dict[str, Any], headers: Mapping[str, str]) -> httpx.Request:
    """A POST of `body` as JSON (encoded as httpx would), with this provider's timeouts."""
    content = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    return httpx.Request(
        "POST",
        _url(url),
        content=content,
        headers={"User-Agent": USER_AGENT, "Content-Type": "application/json", **headers},
        extensions={"timeout": timeouts(settings).as_dict()},
    )


@asynccontextmanager
async def open_stream(
    settings: HttpSettings,
    url: str,
    *,
    body: dict[str, Any],
    headers: Mapping[str, str],
    on_accepted: Callable[[], None] | None = None,
) -> AsyncIterator[httpx.Response]:
    """POST `body` and yield the successful streaming response, its body unread.

    Raises a `ProviderError` for every failure: before the stream (after the allowed retries) with the mapped
    HTTP error, and while the body is read (transport errors, read timeouts, undecodable bytes). Leaving the
    block, also by `aclose()` of the generator using it, closes the response and the connection at once, which
    tells the upstream to stop generating. `on_accepted` is called once the upstream has accepted the request.
    """
    response = await _send_with_retries(shared_upstream(), settings, url, body, headers)
    try:
        if response.headers.get("content-type", "").startswith("application/json"):
            # A server (or proxy) that ignored `stream: true`, or a 200 that carries an error.
            raise _error_from_body(settings.provider, 200, await response.aread(), ProviderStreamError)
        if on_accepted is not None:
            on_accepted()
        yield response
    except httpx.TimeoutException as exc:
        raise ProviderTimeout(
            f"{settings.provider}: no data for {settings.read_timeout:g} s in the middle of the stream"
        ) from exc
    except httpx.HTTPError as exc:
        raise ProviderStreamError(f"{settings.provider}: the stream broke: {exc or type(exc).__name__}") from exc
    except UnicodeDecodeError as exc:
        raise ProviderStreamError(f"{settings.provider}: the stream is not valid UTF-8") from exc
    finally:
        # A response closed before its end closes its connection (httpcore keeps only finished ones for reuse),
        # which is what tells the upstream to stop generating.
        await response.aclose()


# After a provider's end marker ([DONE], message_stop) the body normally ends at once; it is read to its end so
# that the connection can go back to the pool (a response closed before its end closes its connection). A server
# that keeps the body open after the marker is not waited for longer than this.
TAIL_SECONDS = 0.05


class BodyTail:
    """Lets a provider read on to the end of the body after its end marker, for at most `TAIL_SECONDS`."""

    def __init__(self, deadline: asyncio.Timeout) -> None:
        self._deadline = deadline
        self.ended = False

    def end(self) -> None:
        """The answer is complete: what follows is only read to finish the body."""
        self.ended = True
        self._deadline.reschedule(asyncio.get_running_loop().time() + TAIL_SECONDS)


@asynccontextmanager
async def body_tail() -> AsyncIterator[BodyTail]:
    """Wrap a provider's event loop (inside `open_stream`): after `tail.end()` the loop may run on to EOF, and if
    the body does not end within `TAIL_SECONDS` the read is abandoned (closing that connection) as a normal end."""
    tail: BodyTail | None = None
    try:
        async with asyncio.timeout(None) as deadline:
            tail = BodyTail(deadline)
            yield tail
    except TimeoutError:
        if tail is None or not tail.ended:
            raise


async def _send_with_retries(
    upstream: Upstream,
    settings: HttpSettings,
    url: str,
    body: dict[str, Any],
    headers: Mapping[str, str],
) -> httpx.Response:
    name = settings.provider
    request = build_request(settings, url, body, headers)
    stale_retry = True
    attempt = 1
    while True:
        error: ProviderError
        try:
            # The caller's `finally` closes the response.
            response = await upstream.send(request)
        except httpx.ConnectTimeout as exc:
            error = ProviderTimeout(f"{name}: could not connect within {settings.connect_timeout:g} s", retryable=True)
            error.__cause__ = exc
        except httpx.TimeoutException as exc:
            # No response headers within the read timeout: the upstream is stuck; waiting again would double it.
            raise ProviderTimeout(f"{name}: no response within {settings.read_timeout:g} s", retryable=True) from exc
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            if stale_retry:
                # Closed before any response: most likely a pooled connection the server dropped while it was
                # idle. Once per call, retry at once on a fresh connection, without using up an attempt.
                stale_retry = False
                continue
            error = ProviderUnavailable(f"{name}: cannot reach {url}: {exc or type(exc).__name__}", retryable=True)
            error.__cause__ = exc
        except httpx.TransportError as exc:  # refused, reset, or closed before any response
            error = ProviderUnavailable(f"{name}: cannot reach {url}: {exc or type(exc).__name__}", retryable=True)
            error.__cause__ = exc
        else:
            if response.is_success:
                return response
            try:
                raw = await response.aread()
            except httpx.HTTPError:
                raw = b""
            finally:
                await response.aclose()
            error = error_from_response(name, response.status_code, response.headers, raw)
        if not error.retryable or attempt >= settings.max_attempts:
            raise error
        delay = _delay(settings, attempt, error)
        if delay is None:
            raise error
        logger.info("%s: %s; retry %d in %.1f s", name, error, attempt, delay)
        await asyncio.sleep(delay)
        attempt += 1


def _delay(settings: HttpSettings, attempt: int, error: ProviderError) -> float | None:
    if error.retry_after is not None:
        return error.retry_after if error.retry_after <= settings.retry_after_cap else None
    backoff = min(settings.backoff_base * 2 ** (attempt - 1), settings.backoff_cap)
    return backoff * (1 - 0.25 * random.random())  # jitter, so clients that failed together do not retry together


def error_from_response(provider: str, status: int, headers: Mapping[str, str], raw: bytes) -> ProviderError:
    """Map a non-2xx answer (received before any streaming) onto the error tree."""
    if status in (401, 403):
        return _error_from_body(provider, status, raw, ProviderAuthError)
    if status == 408:
        return _error_from_body(provider, status, raw, ProviderTimeout, retryable=True)
    if status == 429:
        error = _error_from_body(provider, status, raw, ProviderRateLimited, retryable=True)
        error.retry_after = parse_retry_after(headers) or _body_retry_delay(error.details.get("body"))
        # Out of credit is reported as 429 too, and waiting does not fix it.
        error.retryable = "insufficient_quota" not in json.dumps(error.details.get("body"))
        return error
    if status >= 500:
        return _error_from_body(provider, status, raw, ProviderUnavailable, retryable=True)
    error = _error_from_body(provider, status, raw, ProviderBadRequest)
    if "API_KEY_INVALID" in json.dumps(error.details.get("body")):  # Gemini answers a bad key with 400
        return ProviderAuthError(error.message, status=status, details=error.details)
    return error


def _error_from_body(
    provider: str, status: int, raw: bytes, cls: type[ProviderError], *, retryable: bool = False
) -> ProviderError:
    text = raw.decode("utf-8", "replace").strip()
    body: Any
    try:
        body = json.loads(text)
    except ValueError:
        body = text[:500]  # gateways answer 502/503 with HTML or plain text
    message = upstream_message(body) or _reason(status, text)
    return cls(f"{provider}: HTTP {status}: {message}", status=status, retryable=retryable, details={"body": body})


def _reason(status: int, text: str) -> str:
    if text and not text.startswith("<"):
        return text[:200]
    return httpx.codes.get_reason_phrase(status) or "error"


def upstream_message(body: Any) -> str | None:
    """The human message inside any provider's error envelope, or None.

    Shapes: `{"error": {"message": …}}` (OpenAI, Anthropic, Gemini, Pinecone, vLLM, llama.cpp),
    `{"error": "…"}` (vLLM 401, Ollama native), `{"message": …}` (old vLLM), `[{"error": …}]` (Gemini without sse).
    """
    if isinstance(body, list) and body:
        return upstream_message(body[0])
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(error, str) and error:
        return error
    if isinstance(body.get("message"), str):
        return body["message"]
    return None


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `retry-after` as seconds or an HTTP date; None if absent/invalid."""
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(float(ms) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


def _body_retry_delay(body: Any) -> float | None:
    # Gemini puts the hint in google.rpc.RetryInfo: {"retryDelay": "47s"}.
    error = body.get("error") if isinstance(body, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    for detail in details if isinstance(details, list) else []:
        delay = detail.get("retryDelay") if isinstance(detail, dict) else None
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return float(delay[:-1])
            except ValueError:
                return None
    return None


def load_event(provider: str, data: str) -> dict[str, Any]:
    """One event's JSON object; anything else (e.g. half an event flushed at EOF) is a broken stream."""
    try:
        obj = json.loads(data)
    except ValueError:
        obj = None
    if not isinstance(obj, dict):
        raise ProviderStreamError(f"{provider}: undecodable event in the stream: {data[:80]!r}")
    return obj


def stream_error(provider: str, error: Any) -> ProviderStreamError:
    """An error the upstream reported after HTTP 200, in the middle of the stream."""
    message = upstream_message({"error": error}) or json.dumps(error)[:200]
    return ProviderStreamError(f"{provider}: error in the stream: {message}", details={"error": error})


def truncated(provider: str, stray_lines: list[str] | None = None) -> ProviderStreamError:
    """EOF before the provider's end marker: the answer is cut short, however complete it looks."""
    extra = f" (unframed: {' '.join(stray_lines)[:200]})" if stray_lines else ""
    return ProviderStreamError(f"{provider}: the stream ended before the answer was finished{extra}")


def split_system(messages: tuple[Message, ...]) -> tuple[str, list[tuple[str, str]]]:
    """For APIs with a separate system field: the system text, and the user/assistant turns merged so they
    alternate and start with a user turn (Anthropic and Gemini reject anything else).

    Empty turns are dropped (both APIs reject empty text). Leading assistant turns (a greeting) are dropped: there
    is no user turn they could answer.
    """
    system = "\n\n".join(m.content for m in messages if m.role == "system" and m.content.strip())
    turns: list[tuple[str, str]] = []
    for message in messages:
        if message.role == "system" or not message.content.strip():
            continue
        if not turns and message.role == "assistant":
            continue
        if turns and turns[-1][0] == message.role:
            turns[-1] = (message.role, f"{turns[-1][1]}\n\n{message.content}")
        else:
            turns.append((message.role, message.content))
    return system, turns
