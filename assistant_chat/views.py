"""Thin HTML views: the rooms a member may enter, a room with its conversations, the file viewer.

Every view is login-protected and fetches its room through `selectors.room_get_for_user`, the one door; a room
the user may not enter is a 404, exactly like a room that does not exist. No business logic here.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from . import errors, selectors, services, turns
from .models import Message
from .review import exports
from .rooms import events

PAGE_MESSAGES = 200  # the latest messages of a conversation shown at once; "show earlier" shows all


def _model_label(model: str) -> str:
    """The room's model as members should read it: an empty setting names the model the default is now."""
    if model:
        return model
    try:
        return f"{turns.resolve_model(None)[1].id} (default)"
    except errors.ChatError:
        return "default"


def _room_or_404(request: HttpRequest, slug: str):  # type: ignore[no-untyped-def]
    try:
        return selectors.room_get_for_user(user=request.user, slug=slug)
    except errors.NotFound:
        raise Http404("Room not found") from None


@login_required
def home(request: HttpRequest) -> HttpResponse:
    rooms = selectors.rooms_for_user(user=request.user).annotate(conversation_count=Count("conversations"))
    return render(request, "assistant_chat/home.html", {"rooms": rooms})


@login_required
def room(request: HttpRequest, slug: str) -> HttpResponse:
    room = _room_or_404(request, slug)
    conversations = selectors.conversation_list(room=room)
    current = None
    wanted = request.GET.get("c")
    if wanted:
        try:
            current = selectors.conversation_get_for_user(user=request.user, conversation_id=wanted, room=room)
        except errors.ChatError:
            raise Http404("Conversation not found") from None
    elif conversations:
        current = conversations[0]
    if current is not None:
        # Answers whose process died long ago stop spinning (the supervisors end recent ones, asking first).
        services.turns_interrupt_lapsed(conversation_id=current.pk, grace_seconds=settings.CHAT_TURN_LEASE_SECONDS)
    messages = selectors.conversation_messages(conversation=current) if current else []
    shown_from = max(0, len(messages) - PAGE_MESSAGES) if request.GET.get("all") != "1" else 0
    earlier = shown_from
    messages = messages[shown_from:]
    payloads = [events.message_payload(message, room.slug) for message in messages]
    state = {
        "room": room.slug,
        "conversation_id": current.pk if current else None,
        "last_message_id": messages[-1].pk if messages else 0,
        "streaming": {str(p["id"]): p["seq"] for p in payloads if p["status"] == Message.Status.STREAMING},
        "max_chars": selectors.message_max_chars(),
    }
    return render(
        request,
        "assistant_chat/room.html",
        {
            "room": room,
            "room_info": {**events.room_payload(room), "model": _model_label(room.model)},
            "filter_json": json.dumps(room.metadata_filter, ensure_ascii=False) if room.metadata_filter else "",
            "conversations": conversations,
            "conversation": current,
            "messages": payloads,
            "earlier": earlier,
            "state": state,
        },
    )


@login_required
def room_file(request: HttpRequest, slug: str, file_id: str) -> HttpResponse:
    room = _room_or_404(request, slug)
    try:
        file = selectors.room_file_get_for_user(user=request.user, room=room, file_id=file_id)
    except errors.NotFound:
        raise Http404("File not found") from None
    page, part = _int_param(request, "page"), _int_param(request, "part")
    view = selectors.file_view(file=file, page=page, part=part)
    return render(request, "assistant_chat/file.html", {"room": room, "file": file, "view": view, "page": page})


def _int_param(request: HttpRequest, name: str) -> int | None:
    raw = request.GET.get(name, "")
    return int(raw) if raw.isdigit() and len(raw) < 10 else None


def _export(request: HttpRequest, slug: str, conversation_id: int, fmt: str) -> HttpResponse:
    """A conversation of a room the member may enter, as a download; anything else is a 404, like a missing one."""
    room = _room_or_404(request, slug)
    try:
        conversation = selectors.conversation_get_for_user(
            user=request.user, conversation_id=conversation_id, room=room
        )
    except errors.ChatError:
        raise Http404("Conversation not found") from None
    return exports.export_response([conversation], fmt, f"{room.slug}-conversation-{conversation.pk}")


@login_required
def conversation_export_json(request: HttpRequest, slug: str, conversation_id: int) -> HttpResponse:
    return _export(request, slug, conversation_id, "json")


@login_required
def conversation_export_markdown(request: HttpRequest, slug: str, conversation_id: int) -> HttpResponse:
    return _export(request, slug, conversation_id, "md")


@login_required
def room_search(request: HttpRequest, slug: str) -> HttpResponse:
    room = _room_or_404(request, slug)
    query = request.GET.get("q", "").strip()[:200]
    hits = selectors.room_search(user=request.user, room=room, query=query) if query else []
    return render(request, "assistant_chat/search.html", {"room": room, "query": query, "hits": hits})
