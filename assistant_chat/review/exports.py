"""Exports of conversations as JSON and Markdown, for members (room page) and staff (admin actions).

Callers pass conversations they have already fetched through a permission-checked door (`selectors`); this module
only reads their messages and formats them. Every message is included with its author, time, status, model, usage,
timings, error and citations, every version of it (regenerated answers, edited questions), who stopped it and the
members' feedback. Links are absolute (`site`: SITE_URL or the request's address), so they work in a downloaded
file. `export_response` wraps the text in a download; nothing else here knows HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from ..message_html import file_url
from ..models import Conversation, Message, MessageFeedback
from ..selectors import display_name

FORMAT_VERSION = 2  # 2: versions, stopped_by, feedback, archived, title_source; absolute links
_BATCH = 200  # conversations whose messages are read per query


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def message_record(
    message: Message,
    room_slug: str,
    assistant_name: str,
    *,
    site: str = "",
    feedback: list[MessageFeedback] | None = None,
) -> dict[str, Any]:
    """One message as exported: everything a reviewer needs to know what was said, by whom, and how. `site` makes
    its links absolute; `feedback` are the members' votes on it (an answer)."""
    is_answer = message.role == Message.Role.ASSISTANT
    record: dict[str, Any] = {
        "id": message.pk,
        "role": message.role,
        "author": assistant_name if is_answer else display_name(message.author) if message.author_id else None,
        "author_username": message.author.get_username() if message.author_id and message.author else None,
        "created_at": _iso(message.created_at),
        "status": message.status,
        "content": message.content,
        "version": message.version,
        "version_of": message.version_of_id,
    }
    if is_answer:
        votes = feedback or []
        record.update(
            stopped_by=display_name(message.stopped_by) if message.stopped_by_id else None,
            feedback={
                "up": sum(1 for v in votes if v.value == MessageFeedback.Value.UP),
                "down": sum(1 for v in votes if v.value == MessageFeedback.Value.DOWN),
                "votes": [
                    {
                        "member": display_name(v.user),
                        "value": v.value,
                        "comment": v.comment,
                        "updated_at": _iso(v.updated_at),
                    }
                    for v in votes
                ],
            },
        )
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
                            "url": site
                            + file_url(room_slug, str(reference["file_id"]), _first(reference.get("pages"))),
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


def conversation_record(
    conversation: Conversation,
    messages: Iterable[Message],
    *,
    site: str = "",
    feedback: dict[int, list[MessageFeedback]] | None = None,
) -> dict[str, Any]:
    room = conversation.room
    votes = feedback or {}
    items = [message_record(m, room.slug, room.assistant.name, site=site, feedback=votes.get(m.pk)) for m in messages]
    answers = [m for m in items if m["role"] == Message.Role.ASSISTANT]
    return {
        "id": conversation.pk,
        "title": conversation.title,
        "room": {"slug": room.slug, "name": room.name, "assistant": room.assistant.name},
        "title_source": conversation.title_source,
        "archived": conversation.archived,
        "url": f"{site}/rooms/{room.slug}/?c={conversation.pk}",
        "created_by": display_name(conversation.created_by) if conversation.created_by_id else None,
        "created_at": _iso(conversation.created_at),
        "updated_at": _iso(conversation.updated_at),
        "feedback": {
            "up": sum(a["feedback"]["up"] for a in answers),
            "down": sum(a["feedback"]["down"] for a in answers),
        },
        "usage": {
            "turns": len(answers),
            "prompt_tokens": sum(a["usage"]["prompt_tokens"] for a in answers),
            "completion_tokens": sum(a["usage"]["completion_tokens"] for a in answers),
        },
        "messages": items,
    }


def conversation_records(conversations: Iterable[Conversation], *, site: str = "") -> Iterator[dict[str, Any]]:
    """Records for many conversations, reading their messages a batch of conversations at a time."""
    batch: list[Conversation] = []
    for conversation in conversations:
        batch.append(conversation)
        if len(batch) >= _BATCH:
            yield from _records(batch, site)
            batch = []
    if batch:
        yield from _records(batch, site)


def _records(batch: list[Conversation], site: str) -> Iterator[dict[str, Any]]:
    by_conversation: dict[int, list[Message]] = {c.pk: [] for c in batch}
    messages = (
        Message.objects.filter(conversation_id__in=list(by_conversation))
        .select_related("author", "stopped_by")
        .order_by("conversation_id", "id")
    )
    for message in messages:
        by_conversation[message.conversation_id].append(message)
    feedback: dict[int, list[MessageFeedback]] = {}
    votes = MessageFeedback.objects.filter(message__conversation_id__in=list(by_conversation)).select_related("user")
    for vote in votes.order_by("message_id", "id"):
        feedback.setdefault(vote.message_id, []).append(vote)
    for conversation in batch:
        yield conversation_record(
            conversation, _in_place_order(by_conversation[conversation.pk]), site=site, feedback=feedback
        )


def _in_place_order(messages: list[Message]) -> list[Message]:
    """Every version of every message, each right after the earlier versions of its place (as the room shows them:
    places in order, versions in order)."""
    return sorted(messages, key=lambda m: (m.version_of_id or m.pk, m.version))


def site_url(request: HttpRequest | None) -> str:
    """The address links in an export start with: SITE_URL when set, else the request's own (scheme and host)."""
    if settings.SITE_URL:
        return settings.SITE_URL
    return request.build_absolute_uri("/").rstrip("/") if request is not None else ""


def export_document(conversations: Iterable[Conversation], *, site: str = "") -> dict[str, Any]:
    """The JSON export of a set of conversations (select_related room and room__assistant for speed)."""
    return {
        "format": "assistant-chat.conversations",
        "version": FORMAT_VERSION,
        "exported_at": _iso(timezone.now()),
        "site": site,
        "conversations": list(conversation_records(conversations, site=site)),
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
        title = (
            f"[{conversation['title']}]({conversation['url']})" if conversation.get("url") else conversation["title"]
        )
        archived = " · archived" if conversation.get("archived") else ""
        out += [
            f"# {title}",
            "",
            f"Room: {room['name']} (`{room['slug']}`) · Assistant: `{room['assistant']}` · "
            f"Started by {conversation['created_by'] or 'someone'} on {_when(conversation['created_at'])} · "
            f"{len(conversation['messages'])} messages, {usage['turns']} answers, "
            f"{usage['prompt_tokens']} prompt + {usage['completion_tokens']} completion tokens · "
            f"feedback {conversation['feedback']['up']} up, {conversation['feedback']['down']} down{archived}",
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
    if message.get("version", 1) > 1:
        heading += f" · version {message['version']}" + (" (edited)" if message["role"] == Message.Role.USER else "")
    if message["status"] != Message.Status.COMPLETE:
        heading += f" · {message['status']}"
    if message.get("stopped_by"):
        heading += f" by {message['stopped_by']}"
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
    feedback = message.get("feedback") or {}
    if feedback.get("votes"):
        lines.append(f"Feedback: {feedback['up']} up, {feedback['down']} down")
        lines.append("")
        for vote in feedback["votes"]:
            comment = f": {vote['comment']}" if vote["comment"] else ""
            lines.append(f"- {vote['member']} ({vote['value']}){comment}")
        lines.append("")
    return lines


def render(conversations: Iterable[Conversation], fmt: str, *, site: str = "") -> tuple[str, str, str]:
    """The export of `conversations` in `fmt` ("json" or "md"): body, content type and file suffix."""
    document = export_document(conversations, site=site)
    if fmt == "md":
        return to_markdown(document), "text/markdown; charset=utf-8", "md"
    return to_json(document), "application/json; charset=utf-8", "json"


def export_response(conversations: Any, fmt: str, stem: str, *, request: HttpRequest | None = None) -> HttpResponse:
    """An export download (JSON or Markdown) of conversations the caller has already checked access to; its links
    are absolute (SITE_URL, else the address of `request`)."""
    body, content_type, suffix = render(conversations, fmt, site=site_url(request))
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{stem}.{suffix}"'
    return response
