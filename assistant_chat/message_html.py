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
