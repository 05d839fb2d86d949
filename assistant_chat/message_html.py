"""A saved message as safe HTML, with its citations linked to the room's file viewer.

Shared by the room protocol (`rooms/events.py`), the pages and staff review (`review/`), so that review never needs
the room's internals. Rendering itself (parser, sanitizer) is `rendering.py`.
"""

from __future__ import annotations

from django.urls import reverse

from .models import Message
from .rendering import citation_linker, render_markdown


def file_url(room_slug: str, file_id: str, page: int | None) -> str:
    url = reverse("room-file", kwargs={"slug": room_slug, "file_id": file_id})
    return f"{url}?page={page}#page-{page}" if page else url


def render_message_html(message: Message, room_slug: str) -> str:
    linker = None
    if message.role == Message.Role.ASSISTANT and message.citations:
        linker = citation_linker(message.citations, lambda file_id, page: file_url(room_slug, file_id, page))
    return render_markdown(message.content, linker)


QUOTE_MAX_CHARS = 300


def message_sources(citations: list[dict], room_slug: str) -> list[dict]:
    """An answer's sources, one per inline number in number order: file, the pages cited for it, the quoted
    passage (the first one saved for it) and a link to the file viewer at its first page. Built from the saved
    citations, so it needs no query."""
    sources: dict[int, dict] = {}
    for citation in citations or []:
        for reference in citation.get("references", []):
            try:
                number = int(reference["number"])
            except (KeyError, TypeError, ValueError):
                continue
            source = sources.setdefault(
                number,
                {
                    "number": number,
                    "file_id": str(reference.get("file_id", "")),
                    "file_name": str(reference.get("file_name", "")),
                    "pages": [],
                    "quote": "",
                },
            )
            for page in reference.get("pages") or []:
                if isinstance(page, int) and page not in source["pages"]:
                    source["pages"].append(page)
            if not source["quote"] and reference.get("quote"):
                source["quote"] = str(reference["quote"])[:QUOTE_MAX_CHARS]
    out = []
    for number in sorted(sources):
        source = sources[number]
        source["pages"].sort()
        first = source["pages"][0] if source["pages"] else None
        source["url"] = file_url(room_slug, source["file_id"], first) if source["file_id"] else ""
        out.append(source)
    return out
