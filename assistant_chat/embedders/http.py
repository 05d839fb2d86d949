"""One synchronous JSON POST for the provider embedders, with retries on 429/5xx and connection errors.

Embedding runs in the worker (ingestion, re-embedding) and once per question, so plain blocking httpx is enough;
a request is idempotent, so it may be retried. No Django here.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from .base import EmbeddingUpstreamError

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


def post_json(
    url: str,
    body: dict[str, Any],
    *,
    headers: dict[str, str],
    timeout: float,
    attempts: int = 3,
    backoff: float = 0.5,
    transport: httpx.BaseTransport | None = None,
) -> Any:
    """The decoded JSON answer of a 2xx reply; EmbeddingUpstreamError (with the server's message) otherwise."""
    last = ""
    with httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)), transport=transport) as client:
        for attempt in range(attempts):
            if attempt:
                time.sleep(backoff * 2 ** (attempt - 1))
            try:
                response = client.post(url, json=body, headers=headers)
            except httpx.HTTPError as exc:
                last = f"could not reach {url}: {type(exc).__name__}: {exc}"
                continue
            if response.status_code in RETRY_STATUSES:
                last = f"{url} answered {response.status_code}: {_message(response)}"
                continue
            if response.status_code >= 400:
                raise EmbeddingUpstreamError(f"{url} answered {response.status_code}: {_message(response)}")
            try:
                return response.json()
            except ValueError as exc:
                raise EmbeddingUpstreamError(f"{url} answered with something that is not JSON") from exc
    raise EmbeddingUpstreamError(last)


def _message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:300]
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error)[:300]
    return str(error or data)[:300]
