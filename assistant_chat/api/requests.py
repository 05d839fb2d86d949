"""Request parsing for the chat-side endpoints (`context` now, `chat` and `chat/completions` next).

Each function validates one part of a JSON body and raises `errors.InvalidArgument` with the message the
reference gives (e.g. "Message content cannot be empty"), so everything is checked before any work starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import errors
from ..knowledge import retrieval
from ..knowledge.filters import FilterError, MetadataFilter, parse_filter

ROLES = ("user", "assistant", "system")


@dataclass(frozen=True)
class ChatMessage:
    role: str
    content: str


def parse_messages(raw: Any, *, field: str = "messages") -> list[ChatMessage]:
    if not isinstance(raw, list) or not raw:
        raise errors.InvalidArgument(f"{field} must be a non-empty list of messages")
    messages = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise errors.InvalidArgument(f"{field}[{index}] must be an object with role and content")
        role = item.get("role", "user")
        if role is None:
            role = "user"
        if not isinstance(role, str) or role == "":
            raise errors.InvalidArgument("Role cannot be empty")
        if role not in ROLES:
            raise errors.InvalidArgument(f"Role '{role}' is not valid")
        content = item.get("content")
        if isinstance(content, list):  # OpenAI's content parts: keep the text ones
            content = "".join(
                part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text"
            )
        if not isinstance(content, str) or not content.strip():
            raise errors.InvalidArgument("Message content cannot be empty")
        messages.append(ChatMessage(role=role, content=content))
    return messages


def parse_metadata_filter(raw: Any) -> MetadataFilter | None:
    try:
        return parse_filter(raw)
    except FilterError as exc:
        raise errors.InvalidArgument(f"Invalid filter: {exc}") from None


def _bounded_int(raw: Any, name: str, *, default: int, low: int, high: int) -> int:
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, int):
        if isinstance(raw, float) and raw.is_integer():
            raw = int(raw)
        else:
            raise errors.InvalidArgument(f"{name} must be an integer between {low} and {high}")
    if not low <= raw <= high:
        raise errors.InvalidArgument(f"{name} must be between {low} and {high}, got {raw}")
    return raw


def parse_top_k(raw: Any) -> int:
    return _bounded_int(raw, "top_k", default=retrieval.DEFAULT_TOP_K, low=1, high=retrieval.MAX_TOP_K)


def parse_snippet_size(raw: Any) -> int:
    return _bounded_int(
        raw,
        "snippet_size",
        default=retrieval.DEFAULT_SNIPPET_SIZE,
        low=retrieval.MIN_SNIPPET_SIZE,
        high=retrieval.MAX_SNIPPET_SIZE,
    )
