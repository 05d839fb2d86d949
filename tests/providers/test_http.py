"""The shared provider plumbing: retry-after parsing, error mapping, message shaping, and no Django anywhere."""

from __future__ import annotations

import ast
from email.utils import formatdate
from pathlib import Path

import pytest

from assistant_chat.providers.base import (
    Message,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)
from assistant_chat.providers.http import error_from_response, parse_retry_after, split_system, upstream_message

PROVIDERS = Path(__file__).resolve().parents[2] / "assistant_chat" / "providers"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "1"}, 1.0),
        ({"retry-after": "2.5"}, 2.5),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after": "soon"}, None),
        ({}, None),
        ({"retry-after": "-3"}, 0.0),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers) == expected


def test_parse_retry_after_http_date() -> None:
    now = 1_764_150_000.0
    assert parse_retry_after({"retry-after": formatdate(now + 30, usegmt=True)}, now=now) == 30.0
    assert parse_retry_after({"retry-after": formatdate(now - 30, usegmt=True)}, now=now) == 0.0


@pytest.mark.parametrize(
    ("status", "cls", "retryable"),
    [
        (400, ProviderBadRequest, False),
        (401, ProviderAuthError, False),
        (403, ProviderAuthError, False),
        (404, ProviderBadRequest, False),
        (408, ProviderTimeout, True),
        (422, ProviderBadRequest, False),
        (429, ProviderRateLimited, True),
        (500, ProviderUnavailable, True),
        (503, ProviderUnavailable, True),
        (529, ProviderUnavailable, True),
    ],
)
def test_status_mapping(status: int, cls: type, retryable: bool) -> None:
    error = error_from_response("p", status, {}, b'{"error":{"message":"boom"}}')
    assert type(error) is cls
    assert (error.status, error.retryable) == (status, retryable)
    assert str(error) == f"p: HTTP {status}: boom"


def test_html_error_page_falls_back_to_the_status_phrase() -> None:
    error = error_from_response("p", 502, {}, b"<html><body>Bad gateway</body></html>")
    assert str(error) == "p: HTTP 502: Bad Gateway"
    assert error.details["body"].startswith("<html>")


@pytest.mark.parametrize(
    "body",
    [
        {"error": {"message": "m", "type": "invalid_request_error"}},
        {"type": "error", "error": {"type": "invalid_request_error", "message": "m"}},
        {"error": {"code": "INVALID_ARGUMENT", "message": "m"}, "status": 400},
        {"error": "m"},
        {"object": "error", "message": "m", "type": "BadRequestError", "code": 400},
        [{"error": {"code": 400, "message": "m", "status": "INVALID_ARGUMENT"}}],
    ],
)
def test_upstream_message_shapes(body: object) -> None:
    assert upstream_message(body) == "m"


def test_split_system_merges_and_alternates() -> None:
    messages = (
        Message("assistant", "Hello!"),
        Message("system", "A"),
        Message("user", "1"),
        Message("user", ""),
        Message("user", "2"),
        Message("system", "B"),
        Message("assistant", "3"),
    )
    assert split_system(messages) == ("A\n\nB", [("user", "1\n\n2"), ("assistant", "3")])


@pytest.mark.parametrize("path", sorted(PROVIDERS.glob("*.py")), ids=lambda p: p.name)
def test_providers_import_no_django_and_nothing_else_of_the_project(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        else:
            continue
        for name in names:
            assert not name.startswith(("django", "channels")), f"{path.name} imports {name}"
            assert not name.startswith("assistant_chat") or name.startswith("assistant_chat.providers"), name
