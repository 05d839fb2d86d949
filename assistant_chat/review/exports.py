"""Exports of conversations as JSON and Markdown, for members (room page) and staff (admin actions).

Callers pass conversations they have already fetched through a permission-checked door (`selectors`); this module
only reads their messages and formats them. Every message is included with its author, time, status, model, usage,
timings, error and citations. `export_response` wraps the text in a download; nothing else here knows HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from django.http import HttpResponse
from django.utils import timezone

from ..message_html import file_url
from ..models import Conversation, Message
from ..selectors import display_name

FORMAT_VERSION = 1
_BATCH = 200  # conversations whose messages are read per query


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def message_record(message: Message, room_slug: str, assistant_name: str) -> dict[str, Any]:
    """One message as exported: everything a reviewer needs to know what was said, by whom, and how."""
    is_answer = message.role == Message.Role.ASSISTANT
    record: dict[str, Any] = {
        "id": message.pk,
        "role": message.role,
        "author": assistant_name if is_answer else display_name(message.author) if message.author_id else None,
        "author_username": message.author.get_username() if message.author_id and message.author else None,
        "created_at": _iso(message.created_at),
        "status": message.status,
        "content": message.content,
    }
    if is_answer:
        record.update(
            reply_to=message.reply_to_id,
            completed_at=_iso(message.completed_at),
            model=message.model,
            temperature=message.temperature,
            metadata_filter=message.metadata_filter,
            finish_reason=message.finish_reason,
            usage={"prompt_tokens": message.prompt_tokens, "completion_tokens": message.completion_tokens},
            timings={"first_token_ms": message.first_token_ms, "total_ms": message.total_ms},
            error=message.error,
            citations=[
                {
                    "position": citation.get("position"),
                    "references": [
                        {
                            **reference,
                            "url": file_url(room_slug, str(reference["file_id"]), _first(reference.get("pages"))),
                        }
                        for reference in citation.get("references", [])
                    ],
                }
                for citation in (message.citations or [])
            ],
        )
    return record


def _first(pages: Any) -> int | None:
    return int(pages[0]) if isinstance(pages, list) and pages else None


def conversation_record(conversation: Conversation, messages: Iterable[Message]) -> dict[str, Any]:
    room = conversation.room
    items = [message_record(m, room.slug, room.assistant.name) for m in messages]
    answers = [m for m in items if m["role"] == Message.Role.ASSISTANT]
    return {
        "id": conversation.pk,
        "title": conversation.title,
        "room": {"slug": room.slug, "name": room.name, "assistant": room.assistant.name},
        "created_by": display_name(conversation.created_by) if conversation.created_by_id else None,
        "created_at": _iso(conversation.created_at),
        "updated_at": _iso(conversation.updated_at),
        "usage": {
            "turns": len(answers),
            "prompt_tokens": sum(a["usage"]["prompt_tokens"] for a in answers),
            "completion_tokens": sum(a["usage"]["completion_tokens"] for a in answers),
        },
        "messages": items,
    }


def conversation_records(conversations: Iterable[Conversation]) -> Iterator[dict[str, Any]]:
    """Records for many conversations, reading their messages a batch of conversations at a time."""
    batch: list[Conversation] = []
    for conversation in conversations:
        batch.append(conversation)
        if len(batch) >= _BATCH:
            yield from _records(batch)
            batch = []
    if batch:
        yield from _records(batch)


def _records(batch: list[Conversation]) -> Iterator[dict[str, Any]]:
    by_conversation: dict[int, list[Message]] = {c.pk: [] for c in batch}
    messages = (
        Message.objects.filter(conversation_id__in=list(by_conversation))
        .select_related("author")
        .order_by("conversation_id", "id")
    )
    for message in messages:
        by_conversation[message.conversation_id].append(message)
    for conversation in batch:
        yield conversation_record(conversation, by_conversation[conversation.pk])


def export_document(conversations: Iterable[Conversation]) -> dict[str, Any]:
    """The JSON export of a set of conversations (select_related room and room__assistant for speed)."""
    return {
        "format": "assistant-chat.conversations",
        "version": FORMAT_VERSION,
        "exported_at": _iso(timezone.now()),
        "conversations": list(conversation_records(conversations)),
    }


def to_json(document: dict[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, indent=2)


def _when(value: str | None) -> str:
    return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "?"


def to_markdown(document: dict[str, Any]) -> str:
    """The same export as readable Markdown: one section per conversation, one heading per message."""
    out: list[str] = []
    for conversation in document["conversations"]:
        room = conversation["room"]
        usage = conversation["usage"]
        out += [
            f"# {conversation['title']}",
            "",
            f"Room: {room['name']} (`{room['slug']}`) · Assistant: `{room['assistant']}` · "
            f"Started by {conversation['created_by'] or 'someone'} on {_when(conversation['created_at'])} · "
            f"{len(conversation['messages'])} messages, {usage['turns']} answers, "
            f"{usage['prompt_tokens']} prompt + {usage['completion_tokens']} completion tokens",
            "",
        ]
        for message in conversation["messages"]:
            out += _message_markdown(message)
        out += ["---", ""]
    out.append(f"_Exported {_when(document['exported_at'])}._")
    return "\n".join(out) + "\n"


def _message_markdown(message: dict[str, Any]) -> list[str]:
    who = message["author"] or "Someone"
    if message["role"] == Message.Role.ASSISTANT:
        who += " (assistant)"
    heading = f"## {who} · {_when(message['created_at'])}"
    if message["status"] != Message.Status.COMPLETE:
        heading += f" · {message['status']}"
    lines = [heading, "", message["content"] or "_(no text)_", ""]
    if message["role"] != Message.Role.ASSISTANT:
        return lines
    references: dict[int, dict[str, Any]] = {}
    for citation in message["citations"]:
        for reference in citation["references"]:
            known = references.setdefault(int(reference["number"]), {**reference, "pages": []})
            known["pages"] = sorted(set(known["pages"]) | set(reference.get("pages") or []))
    if references:
        lines.append("Sources:")
        lines.append("")
        for number, reference in sorted(references.items()):
            pages = f", pp. {', '.join(map(str, reference['pages']))}" if reference["pages"] else ""
            lines.append(f"{number}. [{reference['file_name']}{pages}]({reference['url']}) (`{reference['file_id']}`)")
        lines.append("")
    facts = [f"model {message['model'] or 'default'}"]
    if message["temperature"] is not None:
        facts.append(f"temperature {message['temperature']:g}")
    if message["metadata_filter"]:
        facts.append(f"filter `{json.dumps(message['metadata_filter'], ensure_ascii=False)}`")
    usage, timings = message["usage"], message["timings"]
    facts.append(f"{usage['prompt_tokens']} prompt + {usage['completion_tokens']} completion tokens")
    if timings["first_token_ms"] is not None:
        facts.append(f"first token {timings['first_token_ms']:.0f} ms")
    if timings["total_ms"] is not None:
        facts.append(f"total {timings['total_ms']:.0f} ms")
    if message["finish_reason"]:
        facts.append(f"finish {message['finish_reason']}")
    lines += ["_" + " · ".join(facts) + "_", ""]
    if message["error"]:
        lines += [f"> **Error:** {message['error']}", ""]
    return lines


def render(conversations: Iterable[Conversation], fmt: str) -> tuple[str, str, str]:
    """The export of `conversations` in `fmt` ("json" or "md"): body, content type and file suffix."""
    document = export_document(conversations)
    if fmt == "md":
        return to_markdown(document), "text/markdown; charset=utf-8", "md"
    return to_json(document), "application/json; charset=utf-8", "json"


def export_response(conversations: Any, fmt: str, stem: str) -> HttpResponse:
    """An export download (JSON or Markdown) of conversations the caller has already checked access to."""
    body, content_type, suffix = render(conversations, fmt)
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{stem}.{suffix}"'
    return response
