"""The provider contract: one async generator per model call that yields text deltas, then one `Finish`.

Only `turns` (and the chat API through it) calls providers. This package imports nothing from Django: a provider
gets everything it needs (base URL, key, timeouts) in its constructor and the `ProviderRequest`.

Error tree (every failure a provider raises is one of these; `retryable` tells the caller nothing has been
streamed yet and the same request may be tried again):

    ProviderError
    ├── ProviderNotConfigured      no key / base URL for this provider (message names the variable to set)
    ├── ProviderBadRequest         4xx other than 401/403/408/429: the request itself is wrong; never retried
    ├── ProviderAuthError          401/403: the key is wrong or lacks access
    ├── ProviderRateLimited        429 (carries retry_after seconds when the upstream said so)
    ├── ProviderUnavailable        5xx, connection refused/reset before the first byte
    ├── ProviderTimeout            connect/read timeout (no byte within the read timeout)
    └── ProviderStreamError        the stream broke after it started: an error event mid-stream, a truncated
                                   stream (EOF before the provider's end marker), or undecodable data
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

FinishReason = Literal["stop", "length", "content_filter", "tool_calls"]


@dataclass(frozen=True)
class Message:
    role: Literal["system", "user", "assistant"]
    content: str  # in a room, what the model reads: "Alice: ..." (see `speaker`)
    speaker: str = ""  # who said it, in a room; `content` already names them, so only the offline model uses it


@dataclass(frozen=True)
class ContextSnippet:
    """A numbered passage retrieval gave the turn; `number` is what the model cites as [n]."""

    number: int
    text: str
    file_name: str
    pages: tuple[int, ...] = ()


@dataclass(frozen=True)
class ProviderRequest:
    model: str  # the upstream's model id
    messages: tuple[Message, ...]
    temperature: float | None = None  # None: do not send (reasoning models, or caller's choice)
    max_tokens: int | None = None
    context: tuple[ContextSnippet, ...] = ()  # also rendered into the system message; the offline model reads it
    # Called once the upstream has accepted the request (a success status, before any of the answer): until then
    # a caller can still turn a refusal (401, 429, 5xx after the retries) into an HTTP error of its own.
    # Providers that send no request (the offline model) never call it.
    on_accepted: Callable[[], None] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Delta:
    text: str


@dataclass(frozen=True)
class Finish:
    reason: FinishReason = "stop"
    usage: Usage | None = None  # None when the upstream reported none; the caller then estimates
    model: str | None = None  # the concrete model id the upstream reported, if any


StreamItem = Delta | Finish


class Provider(Protocol):
    name: str

    def stream(self, request: ProviderRequest) -> AsyncGenerator[StreamItem, None]:
        """Yield `Delta`s then exactly one `Finish`. Closing the generator (aclose) closes the upstream
        connection at once, so the upstream stops generating."""
        ...


@dataclass
class ProviderError(Exception):
    message: str
    status: int | None = None
    retryable: bool = False
    retry_after: float | None = None
    details: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


class ProviderNotConfigured(ProviderError):
    pass


class ProviderBadRequest(ProviderError):
    pass


class ProviderAuthError(ProviderError):
    pass


class ProviderRateLimited(ProviderError):
    pass


class ProviderUnavailable(ProviderError):
    pass


class ProviderTimeout(ProviderError):
    pass


class ProviderStreamError(ProviderError):
    pass
