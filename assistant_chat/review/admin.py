"""The admin for rooms (configuration), conversations (read-only review, search, export) and usage.

Loaded by `admin.py`. Forms validate through the same code the turns use (`turns.registry`, `knowledge.filters`);
staff see only the rooms `selectors.rooms_managed_by` gives them; history is read-only. Every room change is logged
in the admin history with the old and new values of the settings that shape answers.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.models import LogEntry
from django.contrib.admin.views.main import ChangeList
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Sum
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from .. import selectors, turns
from ..knowledge.filters import FilterError, parse_filter
from ..message_html import file_url, render_message_html
from ..models import Assistant, Conversation, Message, MessageFeedback, Room, Usage
from ..providers.registry import Registry, UnknownModel
from . import search as history_search
from . import usage
from .exports import export_response

# --- rooms --------------------------------------------------------------------------------------------------------


class FilterField(forms.CharField):
    """A metadata filter typed as JSON, checked by the one filter parser; the error names the problem."""

    widget = forms.Textarea(attrs={"rows": 4, "cols": 80, "style": "font-family: monospace", "spellcheck": "false"})

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, dict):
            return json.dumps(value, ensure_ascii=False) if value else ""
        return value

    def to_python(self, value: Any) -> dict:  # type: ignore[override]
        text = super().to_python(value) or ""
        try:
            parsed = parse_filter(text)
        except FilterError as exc:
            raise forms.ValidationError(f"Invalid metadata filter: {exc}", code="invalid_filter") from None
        return json.loads(text) if parsed is not None else {}

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            return self.to_python(data) != (initial or {})
        except forms.ValidationError:
            return True


def model_choices(registry: Registry, current: str = "") -> list[tuple[str, str]]:
    """Every registry model, unavailable ones marked with the variable to set; the default first; then the
    aliases, each with the model that answers for it."""
    default = registry.spec(None)
    choices = [("", f"Default (now {default.id})")]
    for spec in registry.models.values():
        if spec.id in registry.aliases:
            continue  # listed below, as the alias it now is
        label = f"{spec.id} — {spec.label}" if spec.label else spec.id
        if registry.unavailable_reason(spec):
            label += f" (unavailable: set {_variable(registry, spec.id)})"
        choices.append((spec.id, label))
    for alias in registry.aliases:
        try:
            answering = registry.spec(alias)
        except UnknownModel as exc:
            choices.append((alias, f"{alias} (broken alias: {exc})"))
            continue
        label = f"{alias} → answered by {answering.id}"
        if registry.unavailable_reason(answering):
            label += f" (unavailable: set {_variable(registry, answering.id)})"
        choices.append((alias, label))
    if current and current not in registry.choices():
        choices.append((current, f"{current} (not in the registry: choose another model)"))
    return choices


def _variable(registry: Registry, model_id: str) -> str:
    from ..providers.registry import KEY_VARIABLES

    return KEY_VARIABLES.get(registry.models[model_id].provider, "its key")


class RoomForm(forms.ModelForm):
    model = forms.ChoiceField(
        required=False,
        help_text="Model that answers in this room. Models marked unavailable need their provider's key in the "
        "server environment. Add models served by vLLM, Ollama or llama.cpp under Model endpoints.",
    )
    temperature = forms.FloatField(
        required=False,
        min_value=0.0,
        max_value=2.0,
        widget=forms.NumberInput(attrs={"step": "0.1"}),
        help_text="0 to 2; empty uses the provider's default. Anthropic models accept at most 1. "
        "Reasoning models (o4-mini, gpt-5) ignore it.",
    )
    metadata_filter = FilterField(
        required=False,
        help_text="Which of the assistant's files answers may use, in Pinecone's filter language "
        "($eq $ne $gt $gte $lt $lte $in $nin $exists $and $or), e.g. "
        '{"team": "sales", "year": {"$gte": 2024}}. Empty means all files.',
    )

    class Meta:
        model = Room
        fields = (
            "name",
            "slug",
            "assistant",
            "model",
            "temperature",
            "metadata_filter",
            "instructions",
            "members",
            "member_groups",
            "reply_mode",
            "archived",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.registry = turns.registry()
        self.notes: list[str] = []
        self.fields["model"].choices = model_choices(self.registry, self.instance.model or "")  # type: ignore[attr-defined]
        ignores = [model_id for model_id in self.registry.choices() if not self._accepts_temperature(model_id)]
        if not self._accepts_temperature(None):
            ignores.append("")
        self.fields["model"].widget.attrs["data-ignores-temperature"] = json.dumps(ignores)
        if "metadata_filter" in self.fields:  # read-only for staff who may not use the room's assistant
            self.fields["metadata_filter"].widget.attrs["data-count-url"] = reverse(
                "admin:assistant_chat_room_filter_count"
            )

    def _accepts_temperature(self, model_id: str | None) -> bool:
        try:
            return self.registry.spec(model_id).accepts_temperature
        except UnknownModel:
            return True

    def clean_model(self) -> str:
        value = self.cleaned_data.get("model") or ""
        if not value or value == (self.initial.get("model") or ""):
            return value  # the default, or unchanged: a room keeps working as it did
        assistant = self.cleaned_data.get("assistant")
        if assistant is not None and assistant.remote_name:
            return value  # a remote Pinecone assistant runs the model: no local key (or local model) is needed
        try:
            spec = self.registry.spec(value)  # an alias is checked as the model that answers for it
        except UnknownModel as exc:
            raise forms.ValidationError(str(exc)) from None
        reason = self.registry.unavailable_reason(spec)
        if reason:
            raise forms.ValidationError(reason + ". Set it in the server's environment, or choose another model.")
        return value

    def clean(self) -> dict:
        cleaned = super().clean() or {}
        temperature = cleaned.get("temperature")
        if "model" not in cleaned or temperature is None:
            return cleaned
        try:
            spec = self.registry.spec(cleaned["model"] or None)
        except UnknownModel:
            return cleaned
        if not spec.accepts_temperature:
            self.notes.append(
                f'Model "{spec.id}" ignores the temperature: {temperature:g} is kept but not sent while this model '
                "answers."
            )
        elif temperature > spec.temperature_max:
            self.add_error(
                "temperature",
                f'Model "{spec.id}" accepts a temperature between 0 and {spec.temperature_max:g}; '
                f"{temperature:g} is too high.",
            )
        return cleaned


AUDITED_VALUES = ("name", "slug", "assistant", "model", "temperature", "metadata_filter", "reply_mode", "archived")


def _shown(name: str, value: Any) -> str:
    if name == "model":
        return f'"{value}"' if value else "default"
    if name == "temperature":
        return "default" if value is None else f"{value:g}"
    if name == "metadata_filter":
        return json.dumps(value or {}, ensure_ascii=False, sort_keys=True) if value else "none (all files)"
    if name == "assistant" and isinstance(value, int):
        return str(Assistant.objects.filter(pk=value).first() or value)
    if name == "reply_mode":
        return str(Room.ReplyMode(value).label) if value in Room.ReplyMode.values else str(value)
    return f'"{value}"' if isinstance(value, str) else str(value)


def room_change_message(form: forms.ModelForm) -> str:
    """What changed, field by field, with old → new values for the settings (audit trail in the history)."""
    parts = []
    for name in form.changed_data:
        label = str(form.fields[name].label or name.replace("_", " ")).lower()
        old, new = form.initial.get(name), form.cleaned_data.get(name)
        if name in AUDITED_VALUES:
            parts.append(f"{label}: {_shown(name, old)} → {_shown(name, new)}")
        elif name in ("members", "member_groups"):
            before = {str(item) for item in (old or [])}
            after = {str(item) for item in (new or [])}
            change = [f"+{n}" for n in sorted(after - before)] + [f"−{n}" for n in sorted(before - after)]
            parts.append(f"{label}: {', '.join(change) or 'reordered'}")
        else:
            parts.append(f"{label}")
    return ("Changed " + "; ".join(parts) + ".") if parts else "No fields changed."


class ManagedRoomsMixin:
    """Object permissions on top of Django's model permissions: staff act only on rooms they manage."""

    room_path = "room"

    def managed_rooms(self, request: HttpRequest) -> QuerySet[Room]:
        if not hasattr(request, "_managed_rooms"):
            request._managed_rooms = selectors.rooms_managed_by(user=request.user)  # type: ignore[attr-defined]
        return request._managed_rooms  # type: ignore[attr-defined]

    def room_of(self, obj: Any) -> Room:
        return obj if self.room_path == "" else getattr(obj, self.room_path)

    def may_manage(self, request: HttpRequest, obj: Any) -> bool:
        if obj is None or getattr(request.user, "is_superuser", False):
            return True
        return self.managed_rooms(request).filter(pk=self.room_of(obj).pk).exists()


@admin.register(Room)
class RoomAdmin(ManagedRoomsMixin, admin.ModelAdmin):
    form = RoomForm
    room_path = ""
    list_display = (
        "name",
        "slug",
        "assistant",
        "model_display",
        "temperature",
        "filter_display",
        "reply_mode",
        "archived",
        "links",
    )
    list_filter = ("archived", "reply_mode", ("assistant", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("assistant",)
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    filter_horizontal = ("members", "member_groups")
    show_full_result_count = False
    readonly_fields = ("matching_files", "links", "recent_changes")
    fieldsets = (
        (None, {"fields": ("name", "slug", "assistant", "archived")}),
        (
            "Answers",
            {"fields": ("model", "temperature", "metadata_filter", "matching_files", "instructions", "reply_mode")},
        ),
        ("Members", {"fields": ("members", "member_groups")}),
        ("History", {"fields": ("links", "recent_changes")}),
    )

    class Media:
        js = ("assistant_chat/admin_room.js",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Room]:
        return super().get_queryset(request).filter(pk__in=self.managed_rooms(request).values("pk"))

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_change_permission(request, obj) and self.may_manage(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_delete_permission(request, obj) and self.may_manage(request, obj)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_view_permission(request, obj) and self.may_manage(request, obj)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "assistant":  # only assistants this staff user may use (selectors.assistants_for_staff)
            kwargs["queryset"] = selectors.assistants_for_staff(user=request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        readonly = super().get_readonly_fields(request, obj)
        if obj is not None and not selectors.staff_may_use_assistant(user=request.user, assistant_id=obj.assistant_id):
            # A member of a room on an assistant they may not use keeps its assistant and filter: widening the
            # filter would open that assistant's other files to them.
            return (*readonly, "assistant", "metadata_filter", "matching_files_withheld")
        return readonly

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:  # nothing to show yet in the history section
            return tuple(fs for fs in self.fieldsets if fs[0] != "History")
        if not selectors.staff_may_use_assistant(user=request.user, assistant_id=obj.assistant_id):
            return tuple(
                (name, {**options, "fields": tuple(_withheld(f) for f in options["fields"])})
                for name, options in self.fieldsets
            )
        return self.fieldsets

    @admin.display(description="files the filter lets answers use")
    def matching_files_withheld(self, room: Room) -> str:
        return "Shown to staff who may use this room's assistant."

    def get_urls(self) -> list[URLPattern]:
        extra = [
            path(
                "filter-count/",
                self.admin_site.admin_view(self.filter_count_view),
                name="assistant_chat_room_filter_count",
            )
        ]
        return extra + super().get_urls()

    def filter_count_view(self, request: HttpRequest) -> JsonResponse:
        """How many of an assistant's files a filter (as typed, not yet saved) matches: the form's live count."""
        if not (self.has_view_or_change_permission(request) or self.has_add_permission(request)):
            raise PermissionDenied
        wanted = request.GET.get("assistant") or ""
        # Only assistants the caller may use: another's file names and metadata are not theirs to probe.
        assistant = (
            selectors.assistants_for_staff(user=request.user).filter(pk=wanted).first() if wanted.isdigit() else None
        )
        if wanted and assistant is None:
            return JsonResponse(
                {
                    "valid": False,
                    "error": "You may not use this assistant.",
                    "matching": None,
                    "total": None,
                    "names": [],
                },
                status=403,
            )
        try:
            parsed = parse_filter(request.GET.get("filter") or None)
        except FilterError as exc:
            return JsonResponse({"valid": False, "error": str(exc)})
        if assistant is None:
            return JsonResponse({"valid": True, "error": "", "matching": None, "total": None, "names": []})
        return JsonResponse({"valid": True, "error": "", **_file_counts(assistant, parsed)})

    def save_model(self, request: HttpRequest, obj: Room, form: forms.ModelForm, change: bool) -> None:
        super().save_model(request, obj, form, change)
        for note in getattr(form, "notes", []):
            messages.warning(request, note)

    def construct_change_message(self, request: HttpRequest, form: Any, formsets: Any, add: bool = False) -> Any:
        if add:
            return super().construct_change_message(request, form, formsets, add)
        return room_change_message(form)

    @admin.display(description="model", ordering="model")
    def model_display(self, room: Room) -> str:
        return room.model or "default"

    @admin.display(description="filter")
    def filter_display(self, room: Room) -> SafeString | str:
        if not room.metadata_filter:
            return "all files"
        return format_html("<code>{}</code>", json.dumps(room.metadata_filter, ensure_ascii=False))

    @admin.display(description="files the filter lets answers use")
    def matching_files(self, room: Room) -> SafeString | str:
        if not room.assistant_id:
            return "Choose an assistant to see which files match."
        try:
            parsed = parse_filter(room.metadata_filter or None)
        except FilterError as exc:
            return f"The saved filter is invalid: {exc}"
        counts = _file_counts(room.assistant, parsed)
        names = ", ".join(counts["names"]) + (" …" if counts["matching"] > len(counts["names"]) else "")
        return format_html(
            '<span class="room-filter-count">{} of {} files match{}</span>',
            counts["matching"],
            counts["total"],
            f": {names}" if names else "",
        )

    @admin.display(description="review")
    def links(self, room: Room) -> SafeString | str:
        if room.pk is None:
            return ""
        conversations = reverse("admin:assistant_chat_conversation_changelist") + f"?room={room.pk}"
        usage_url = reverse("admin:assistant_chat_usage_changelist") + f"?room={room.pk}"
        history = reverse("admin:assistant_chat_room_history", args=[room.pk])
        return format_html(
            '<a href="{}">Conversations</a> · <a href="{}">Usage</a> · <a href="{}">History</a>',
            conversations,
            usage_url,
            history,
        )

    @admin.display(description="recent changes")
    def recent_changes(self, room: Room) -> SafeString | str:
        if room.pk is None:
            return ""
        entries = room_history(room)[:20]
        if not entries:
            return "No changes recorded yet."
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    timezone.localtime(e.action_time).strftime("%Y-%m-%d %H:%M"),
                    e.user.get_username() if e.user_id else "?",
                    e.get_change_message(),
                )
                for e in entries
            ),
        )
        return format_html(
            '<table class="room-history"><thead><tr><th>when</th><th>who</th><th>what</th></tr></thead>'
            "<tbody>{}</tbody></table>",
            rows,
        )


def _withheld(field: Any) -> Any:
    return "matching_files_withheld" if field == "matching_files" else field


def room_history(room: Room) -> QuerySet[LogEntry]:
    """The admin's log of changes to a room, newest first."""
    return (
        LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(Room), object_id=str(room.pk))
        .select_related("user")
        .order_by("-action_time", "-id")
    )


def _file_counts(assistant: Assistant, parsed: Any) -> dict[str, Any]:
    files = selectors.files_matching(assistant=assistant, metadata_filter=None)
    matching = [f for f in files if parsed is None or parsed.matches(f.metadata)]
    return {"matching": len(matching), "total": len(files), "names": [f.name for f in matching[:8]]}


# --- conversations --------------------------------------------------------------------------------------------------


class RoomListFilter(admin.SimpleListFilter):
    title = "room"
    parameter_name = "room"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[Any, str]]:
        return [(room.pk, room.name) for room in selectors.rooms_managed_by(user=request.user).only("pk", "name")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        return queryset.filter(room_id=value) if value and value.isdigit() else queryset


class MemberListFilter(admin.SimpleListFilter):
    title = "member (wrote in it)"
    parameter_name = "member"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[Any, str]]:
        rooms = selectors.rooms_managed_by(user=request.user)
        return [(user.pk, selectors.display_name(user)) for user in selectors.room_usage_authors(rooms=rooms)]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if not (value and value.isdigit()):
            return queryset
        # IN over the author index: one seek per message they wrote, not a probe per conversation.
        wrote = Message.objects.filter(author_id=int(value)).values("conversation_id")
        return queryset.filter(Q(pk__in=wrote) | Q(created_by_id=int(value)))


ANSWER_STATUSES = {
    "failed": ("has failed answers", Q(status=Message.Status.FAILED)),
    "cancelled": ("has stopped answers", Q(status=Message.Status.CANCELLED)),
    "interrupted": ("has interrupted answers", Q(status=Message.Status.INTERRUPTED)),
    "streaming": ("is answering now", Q(status=Message.Status.STREAMING)),
}


class StatusListFilter(admin.SimpleListFilter):
    title = "answers"
    parameter_name = "answers"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(key, label) for key, (label, _q) in ANSWER_STATUSES.items()] + [("ok", "all answers complete")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        answers = Message.objects.filter(role=Message.Role.ASSISTANT)  # read through the (status, conversation) index
        if value in ANSWER_STATUSES:  # one (status, conversation) index seek per conversation
            return queryset.filter(Exists(answers.filter(ANSWER_STATUSES[value][1], conversation=OuterRef("pk"))))
        if value == "ok":
            unfinished = answers.exclude(status=Message.Status.COMPLETE).values("conversation_id")
            return queryset.exclude(pk__in=unfinished)
        return queryset


class ModelListFilter(admin.SimpleListFilter):
    title = "model"
    parameter_name = "model"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        # From the registry and the rooms' settings, not a scan of every message.
        ids = set(turns.registry().models)
        ids |= set(Room.objects.exclude(model="").values_list("model", flat=True))
        return [(model_id, model_id) for model_id in sorted(ids)]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if not value:
            return queryset
        # One (model, conversation) index seek per conversation: a popular model would make an IN list huge.
        answered = Message.objects.filter(model=value, conversation=OuterRef("pk"))
        return queryset.filter(Exists(answered))


FEEDBACK_FILTERS = {
    "negative": ("has negative feedback", Q(value=MessageFeedback.Value.DOWN)),
    "positive": ("has positive feedback", Q(value=MessageFeedback.Value.UP)),
    "commented": ("has feedback comments", ~Q(comment="")),
    "any": ("has any feedback", Q()),
}


class FeedbackListFilter(admin.SimpleListFilter):
    title = "feedback"
    parameter_name = "feedback"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(key, label) for key, (label, _q) in FEEDBACK_FILTERS.items()] + [("none", "no feedback")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        votes = MessageFeedback.objects.all()  # read through the (value, message) index
        if value in FEEDBACK_FILTERS:
            return queryset.filter(
                Exists(votes.filter(FEEDBACK_FILTERS[value][1], message__conversation=OuterRef("pk")))
            )
        if value == "none":
            return queryset.exclude(Exists(votes.filter(message__conversation=OuterRef("pk"))))
        return queryset


class ConversationChangeList(ChangeList):
    """Adds per-row figures for the page shown (one aggregate over those conversations' messages, never a count
    over the whole history) and, for a search, the first matching message of each row."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        rows = list(self.result_list)
        ids = [row.pk for row in rows]
        stats = {
            item["conversation_id"]: item
            for item in Message.objects.filter(conversation_id__in=ids)
            .values("conversation_id")
            .annotate(
                n=Count("id"),
                tokens=Sum("prompt_tokens") + Sum("completion_tokens"),
                **{
                    key: Count("id", filter=q & Q(role=Message.Role.ASSISTANT))
                    for key, (_l, q) in ANSWER_STATUSES.items()
                },
            )
            .order_by()
        }
        models: dict[int, set[str]] = {}
        for conversation_id, model in (
            Message.objects.filter(conversation_id__in=ids, role=Message.Role.ASSISTANT)
            .exclude(model="")
            .values_list("conversation_id", "model")
            .distinct()
            .order_by()
        ):
            models.setdefault(conversation_id, set()).add(model)
        hits: dict[int, history_search.MessageHit] = {}
        first = getattr(request, "_review_first_matches", None)
        if self.query and first is not None:
            wanted = [first[pk] for pk in ids if pk in first]
            hits = history_search.snippets_for_messages(query=self.query, message_ids=wanted)
        elif self.query:
            hits = history_search.snippets_by_conversation(query=self.query, conversation_ids=ids)
        votes = {
            item["message__conversation_id"]: item
            for item in MessageFeedback.objects.filter(message__conversation_id__in=ids)
            .values("message__conversation_id")
            .annotate(
                up=Count("id", filter=Q(value=MessageFeedback.Value.UP)),
                down=Count("id", filter=Q(value=MessageFeedback.Value.DOWN)),
            )
            .order_by()
        }
        for row in rows:
            row.review_feedback = votes.get(row.pk, {})
            row.review_stats = stats.get(row.pk, {})
            row.review_models = sorted(models.get(row.pk, ()))
            row.review_hit = hits.get(row.pk)
        self.result_list = rows  # type: ignore[assignment]


@admin.register(Conversation)
class ConversationAdmin(ManagedRoomsMixin, admin.ModelAdmin):
    list_display = (
        "title", "room", "created_by", "created_at", "updated_at", "message_count", "tokens", "answers", "feedback",
    )  # fmt: skip
    list_select_related = ("room", "created_by")
    list_filter = (RoomListFilter, MemberListFilter, ("created_at", admin.DateFieldListFilter), StatusListFilter,
                   ModelListFilter, FeedbackListFilter, "archived")  # fmt: skip
    search_fields = ("title",)
    search_help_text = "Finds conversations by title or by any word in their messages (all words must match)."
    show_full_result_count = False
    ordering = ("-updated_at", "-id")
    list_per_page = 50
    fields = ("title", "title_source", "archived", "room", "created_by", "created_at", "updated_at")
    readonly_fields = fields
    actions = ["export_json", "export_markdown"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        queryset = super().get_queryset(request)
        if getattr(request.user, "is_superuser", False) or request.user.has_perm("assistant_chat.manage_rooms"):
            return queryset
        return queryset.filter(room__in=self.managed_rooms(request))

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return ConversationChangeList

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        first = history_search.first_matches(term)
        request._review_first_matches = first  # type: ignore[attr-defined]  # the page's snippets reuse it
        matching = history_search.ids_filter(sorted(first)) if first is not None else None
        matching = matching or history_search.conversations_matching(term)
        return queryset.filter(Q(title__icontains=term) | matching), False

    def get_list_display(self, request: HttpRequest) -> Any:
        if request.GET.get("q", "").strip():
            return (*self.list_display[:2], "match", *self.list_display[2:])
        return self.list_display

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # history is evidence: nobody edits it here

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        allowed = super().has_view_permission(request, obj) or request.user.has_perm("assistant_chat.manage_rooms")
        return allowed and self.may_manage(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_delete_permission(request, obj) and self.may_manage(request, obj)

    @admin.display(description="messages")
    def message_count(self, conversation: Conversation) -> int:
        return getattr(conversation, "review_stats", {}).get("n", 0)

    @admin.display(description="tokens")
    def tokens(self, conversation: Conversation) -> int:
        return getattr(conversation, "review_stats", {}).get("tokens") or 0

    @admin.display(description="answers")
    def answers(self, conversation: Conversation) -> SafeString | str:
        stats = getattr(conversation, "review_stats", {})
        flags = [f"{stats[key]} {key}" for key in ANSWER_STATUSES if stats.get(key)]
        models = ", ".join(getattr(conversation, "review_models", []))
        return format_html(
            "{}{}", models, format_html(' <b style="color:#cf222e">{}</b>', ", ".join(flags)) if flags else ""
        )

    @admin.display(description="feedback")
    def feedback(self, conversation: Conversation) -> SafeString | str:
        votes = getattr(conversation, "review_feedback", {})
        if not votes:
            return "–"
        return format_html(
            '{} up · <b style="color:{}">{} down</b>',
            votes["up"],
            "#cf222e" if votes["down"] else "inherit",
            votes["down"],
        )

    @admin.display(description="matching message")
    def match(self, conversation: Conversation) -> SafeString | str:
        hit = getattr(conversation, "review_hit", None)
        if hit is None:
            return "(title)"
        url = reverse("admin:assistant_chat_conversation_change", args=[conversation.pk]) + f"#message-{hit.message_id}"
        return format_html('<a href="{}">{}</a>', url, hit.snippet)

    def get_urls(self) -> list[URLPattern]:
        extra = [
            path(
                "<int:object_id>/export.<str:fmt>",
                self.admin_site.admin_view(self.export_view),
                name="assistant_chat_conversation_export",
            )
        ]
        return extra + super().get_urls()

    def export_view(self, request: HttpRequest, object_id: int, fmt: str) -> HttpResponse:
        conversation = get_object_or_404(self.get_queryset(request).select_related("room__assistant"), pk=object_id)
        if not self.has_view_permission(request, conversation) or fmt not in ("json", "md"):
            raise PermissionDenied
        return export_response([conversation], fmt, f"conversation-{conversation.pk}", request=request)

    @admin.action(description="Export selected conversations as JSON", permissions=["view"])
    def export_json(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> HttpResponse:
        return export_response(
            queryset.select_related("room__assistant", "created_by"), "json", "conversations", request=request
        )

    @admin.action(description="Export selected conversations as Markdown", permissions=["view"])
    def export_markdown(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> HttpResponse:
        return export_response(
            queryset.select_related("room__assistant", "created_by"), "md", "conversations", request=request
        )

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        conversation = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if conversation is not None and self.has_view_permission(request, conversation):
            context["transcript"] = transcript(conversation)
            context["export_json_url"] = reverse(
                "admin:assistant_chat_conversation_export", args=[conversation.pk, "json"]
            )
            context["export_md_url"] = reverse("admin:assistant_chat_conversation_export", args=[conversation.pk, "md"])
        return super().change_view(request, object_id, form_url, context)


def transcript(conversation: Conversation) -> list[dict[str, Any]]:
    """Every message of a conversation as the review page shows it: rendered text, citations linked to the room's
    file viewer at the cited page, usage, timings and errors; every version of a place (regenerated answers, edited
    questions) right after the earlier ones, who stopped an answer, and members' feedback with comments."""
    room = conversation.room
    items = []
    messages = list(
        Message.objects.filter(conversation=conversation).select_related("author", "stopped_by").order_by("id")
    )
    counts: dict[int, int] = {}
    for message in messages:
        place = message.version_of_id or message.pk
        counts[place] = counts.get(place, 0) + 1
    votes: dict[int, list[MessageFeedback]] = {}
    for vote in MessageFeedback.objects.filter(message__conversation=conversation).select_related("user"):
        votes.setdefault(vote.message_id, []).append(vote)
    messages.sort(key=lambda m: (m.version_of_id or m.pk, m.version))
    for message in messages:
        place_versions = counts[message.version_of_id or message.pk]
        message_votes = votes.get(message.pk, [])
        references = []
        for citation in message.citations or []:
            for reference in citation.get("references", []):
                pages = reference.get("pages") or []
                references.append(
                    {
                        "number": reference.get("number"),
                        "file_name": reference.get("file_name") or reference.get("file_id"),
                        "links": [(page, file_url(room.slug, str(reference["file_id"]), page)) for page in pages]
                        or [(None, file_url(room.slug, str(reference["file_id"]), None))],
                    }
                )
        items.append(
            {
                "message": message,
                "author": room.assistant.name
                if message.role == Message.Role.ASSISTANT
                else selectors.display_name(message.author),
                "html": render_message_html(message, room.slug),
                "filter_json": json.dumps(message.metadata_filter, ensure_ascii=False)
                if message.metadata_filter
                else "",
                "references": references,
                "version_label": f"version {message.version} of {place_versions}" if place_versions > 1 else "",
                "edited": message.role == Message.Role.USER and message.version > 1,
                "stopped_by": selectors.display_name(message.stopped_by) if message.stopped_by_id else "",
                "feedback_up": sum(1 for v in message_votes if v.value == MessageFeedback.Value.UP),
                "feedback_down": sum(1 for v in message_votes if v.value == MessageFeedback.Value.DOWN),
                "feedback": [
                    {"member": selectors.display_name(v.user), "value": v.value, "comment": v.comment}
                    for v in message_votes
                ],
            }
        )
    return items


# --- usage ----------------------------------------------------------------------------------------------------------


def _date(value: str | None, default: date) -> date:
    try:
        return date.fromisoformat(value) if value else default
    except ValueError:
        return default


@admin.register(Usage)
class UsageAdmin(admin.ModelAdmin):
    """Not a list of rows: a report of turns and tokens per day, room, member and model, with a date range."""

    def get_urls(self) -> list[URLPattern]:
        return [path("", self.admin_site.admin_view(self.changelist_view), name="assistant_chat_usage_changelist")]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_view_permission(request, obj) or request.user.has_perm("assistant_chat.manage_rooms")

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> TemplateResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        today = timezone.localdate()
        end = _date(request.GET.get("end"), today)
        start = _date(request.GET.get("start"), end - timedelta(days=29))
        if start > end:
            start, end = end, start
        rooms = selectors.rooms_managed_by(user=request.user)
        room_id = request.GET.get("room", "")
        member_id = request.GET.get("member", "")
        model = request.GET.get("model", "").strip()
        # Without a submitted form: per day and room (member x model per day is thousands of rows in a busy month).
        defaults = {"day", "room"} if "start" not in request.GET else set()
        group_by = tuple(d for d in usage.DIMENSIONS if request.GET.get(f"by_{d}") or d in defaults)
        report = usage.usage_report(
            rooms=rooms,
            start=start,
            end=end,
            room_id=int(room_id) if room_id.isdigit() else None,
            member_id=int(member_id) if member_id.isdigit() else None,
            model=model or None,
            group_by=group_by,
        )
        context = {
            **self.admin_site.each_context(request),
            "title": "Usage: turns and tokens",
            "opts": self.model._meta,
            "report": report,
            "start": start,
            "end": end,
            "rooms": list(rooms.only("pk", "name")),
            "members": [(u.pk, selectors.display_name(u)) for u in selectors.room_usage_authors(rooms=rooms)],
            "models": sorted(set(turns.registry().models)),
            "room_id": room_id,
            "member_id": member_id,
            "model": model,
            "group_by": group_by,
            "dimensions": usage.DIMENSIONS,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/assistant_chat/usage/report.html", context)
