"""Thin HTML views: the rooms a member may enter, a room with its conversations, the file viewer.

Every view is login-protected and fetches its room through `selectors.room_get_for_user`, the one door; a room
the user may not enter is a 404, exactly like a room that does not exist. No business logic here.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse

from . import errors, selectors, services
from .models import Message
from .review import exports
from .rooms import events

PAGE_MESSAGES = selectors.MESSAGE_PAGE  # the newest places of a conversation a page shows; older ones load on scroll
OLDER_LIMIT_MAX = 200


def _room_or_404(request: HttpRequest, slug: str):  # type: ignore[no-untyped-def]
    try:
        return selectors.room_get_for_user(user=request.user, slug=slug)
    except errors.NotFound:
        raise Http404("Room not found") from None


def _payloads(messages: list[Message], room_slug: str, user: object) -> list[events.MessagePayload]:
    """Payloads for a page of messages, with every version's id, vote counts and the viewer's own vote, read in
    bulk (a constant number of queries)."""
    answer_ids = [m.pk for m in messages if m.role == Message.Role.ASSISTANT]
    counts = selectors.feedback_counts(message_ids=answer_ids)
    mine = selectors.feedback_of(user=user, message_ids=answer_ids)
    payloads = []
    for message in messages:
        payload = events.message_payload(
            message,
            room_slug,
            versions=getattr(message, "version_ids", None),
            feedback=counts.get(message.pk, {"up": 0, "down": 0}),
        )
        payload["my_feedback"] = mine.get(message.pk, {"value": "", "comment": ""})  # type: ignore[typeddict-unknown-key]
        payloads.append(payload)
    return payloads


@login_required
def home(request: HttpRequest) -> HttpResponse:
    rooms = selectors.rooms_for_user(user=request.user).annotate(conversation_count=Count("conversations"))
    return render(request, "assistant_chat/home.html", {"rooms": rooms})


@login_required
def room(request: HttpRequest, slug: str) -> HttpResponse:
    room = _room_or_404(request, slug)
    show_archived = request.GET.get("archived") == "1"
    conversations = selectors.conversation_list(room=room, archived=show_archived)
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
    messages, has_more = selectors.message_page(conversation=current) if current else ([], False)
    payloads = _payloads(messages, room.slug, request.user)
    state = {
        "room": room.slug,
        "conversation_id": current.pk if current else None,
        "last_message_id": max((m.pk for m in messages), default=0),
        "first_message_id": payloads[0]["slot"] if payloads else 0,
        "has_more": has_more,
        "has_earlier": has_more,
        "older_url": reverse("conversation-messages", kwargs={"slug": room.slug, "conversation_id": current.pk})
        if current
        else "",
        "streaming": {str(p["id"]): p["seq"] for p in payloads if p["status"] == Message.Status.STREAMING},
        "max_chars": selectors.message_max_chars(),
        "user_id": request.user.pk,
        "may_manage": selectors.room_manager(user=request.user),
    }
    return render(
        request,
        "assistant_chat/room.html",
        {
            "room": room,
            "room_info": {**events.room_payload(room), "model": events.model_label(room.model)},
            "filter_json": json.dumps(room.metadata_filter, ensure_ascii=False) if room.metadata_filter else "",
            "conversations": conversations,
            "conversation": current,
            "show_archived": show_archived,
            "can_archive": current is not None and current.created_by_id == request.user.pk,
            "archived_count": selectors.conversation_archived_count(room=room),
            "messages": payloads,
            "earlier": selectors.message_places_before(conversation=current, before_id=state["first_message_id"])
            if has_more and current
            else 0,
            "state": state,
        },
    )


@login_required
def conversation_messages(request: HttpRequest, slug: str, conversation_id: int) -> HttpResponse:
    """Older messages for scrolling up: the newest `limit` places before `before` (a place's first version id), as
    JSON payloads in order, each its latest version, with `has_more`. A conversation the member may not see is a
    404; a bad `before` or `limit` is a 400 that says why."""
    room = _room_or_404(request, slug)
    try:
        conversation = selectors.conversation_get_for_user(
            user=request.user, conversation_id=conversation_id, room=room
        )
    except errors.ChatError:
        raise Http404("Conversation not found") from None
    before, limit = request.GET.get("before", ""), request.GET.get("limit", str(PAGE_MESSAGES))
    if before and not (before.isdigit() and len(before) < 12):
        return JsonResponse({"error": "'before' must be a message id (a whole number)."}, status=400)
    if not (limit.isdigit() and 1 <= int(limit) <= OLDER_LIMIT_MAX):
        return JsonResponse({"error": f"'limit' must be a whole number from 1 to {OLDER_LIMIT_MAX}."}, status=400)
    messages, has_more = selectors.message_page(
        conversation=conversation, before_id=int(before) if before else None, limit=int(limit)
    )
    return JsonResponse({"messages": _payloads(messages, room.slug, request.user), "has_more": has_more})


@login_required
def message_detail(request: HttpRequest, slug: str, message_id: int) -> HttpResponse:
    """One message (any version) as JSON, for browsing an answer's or a question's earlier versions."""
    room = _room_or_404(request, slug)
    try:
        message = selectors.message_get_for_user(user=request.user, message_id=message_id, room=room)
    except errors.ChatError:
        raise Http404("Message not found") from None
    return JsonResponse({"message": _payloads([message], room.slug, request.user)[0]})


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
    return exports.export_response([conversation], fmt, f"{room.slug}-conversation-{conversation.pk}", request=request)


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
