"""The admin: where staff create assistants, upload files with metadata, watch processing and issue API keys.

Forms validate through the same code as the API (`services`, `knowledge.filters`); actions call services.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import URLPattern, path
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from . import errors, selectors, services, turns
from .jobs.reembed import EmbeddingModelError, embedding_model_change
from .knowledge.embedding import embedder_for, embedding_models
from .knowledge.filters import MetadataError, validate_metadata
from .knowledge.parsers import SUPPORTED_EXTENSIONS
from .models import ApiKey, Assistant, Chunk, File, ModelAlias, ModelEndpoint, Operation
from .providers.registry import AliasError, Registry, UnknownModel


class StatusFilterMixin:
    @staticmethod
    def status_badge(status: str) -> SafeString:
        colours = {
            "Available": "#1a7f37",
            "Ready": "#1a7f37",
            "Processing": "#9a6700",
            "ProcessingFailed": "#cf222e",
            "Deleting": "#57606a",
            "Terminating": "#57606a",
        }
        return format_html('<b style="color:{}">{}</b>', colours.get(status, "#57606a"), status)


class AssistantScopeMixin:
    """Staff see and act on the assistants `selectors.assistants_for_staff` gives them, and their files,
    operations and keys; everything else is absent from their lists and choices."""

    assistant_path = "assistant"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = super().get_queryset(request)  # type: ignore[misc]
        if selectors.staff_uses_every_assistant(user=request.user):
            return queryset
        allowed = selectors.assistants_for_staff(user=request.user).values("pk")
        return queryset.filter(**{f"{self.assistant_path}__in": allowed})

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "assistant":
            kwargs["queryset"] = selectors.assistants_for_staff(user=request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)  # type: ignore[misc]

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "assistants":
            kwargs["queryset"] = selectors.assistants_for_staff(user=request.user)
        return super().formfield_for_manytomany(db_field, request, **kwargs)  # type: ignore[misc]


class FileInline(admin.TabularInline):
    model = File
    extra = 0
    fields = ("name", "status", "progress", "metadata", "size")
    readonly_fields = ("name", "status", "progress", "metadata", "size")
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="done")
    def progress(self, file: File) -> str:
        return f"{file.percent_done:.0%}"


class SuggestingInput(forms.TextInput):
    """A text input that offers `options` as the browser's suggestions (a datalist); any other value may be typed."""

    def __init__(self, options: list[str], attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs)
        self.options = options

    def render(self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None) -> SafeString:
        listed = f"{(attrs or {}).get('id') or name}-options"
        html = super().render(name, value, {**(attrs or {}), "list": listed}, renderer)
        options = format_html_join("", '<option value="{}"></option>', ((option,) for option in self.options))
        return format_html('{}<datalist id="{}">{}</datalist>', html, listed, options)


class AssistantForm(forms.ModelForm):
    """The admin builds the fields (modelform_factory); this adds the embedding model's check, and offers the models
    this server can embed with (the built-in ones, and the providers' whose key is set) as suggestions."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "embedding_model" in self.fields:
            field = self.fields["embedding_model"]
            field.required = False  # blank: the built-in offline embedder
            field.widget = SuggestingInput(embedding_models(), attrs=field.widget.attrs)

    def clean_embedding_model(self) -> str:
        default = str(Assistant._meta.get_field("embedding_model").default)
        model = (self.cleaned_data.get("embedding_model") or "").strip() or default
        try:
            embedder_for(model)
        except Exception as exc:  # EmbeddingError: unknown model or provider not configured, said in words
            raise forms.ValidationError(str(exc)) from exc
        return model


@admin.register(Assistant)
class AssistantAdmin(AssistantScopeMixin, admin.ModelAdmin, StatusFilterMixin):
    assistant_path = "pk"
    form = AssistantForm
    list_display = ("name", "status_display", "file_count", "region", "updated_at")
    search_fields = ("name", "instructions")
    list_filter = ("status", "region")
    readonly_fields = ("status", "created_at", "updated_at", "embedded_with", "embedding_state")
    filter_horizontal = ("room_staff", "room_staff_groups")
    inlines = [FileInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Assistant]:
        return super().get_queryset(request).annotate(_files=Count("files"))

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        if not change and not selectors.staff_uses_every_assistant(user=request.user):
            form.instance.room_staff.add(request.user)  # whoever creates an assistant may use it

    def save_model(self, request: HttpRequest, obj: Assistant, form: Any, change: bool) -> None:
        chosen = obj.embedding_model
        if "embedding_model" in form.changed_data:
            obj.embedding_model = form.initial.get("embedding_model") or obj.embedded_with
        super().save_model(request, obj, form, change)
        if obj.embedding_model != chosen:
            try:  # the job re-embeds every chunk in the background; search keeps the old model until it is done
                embedding_model_change(assistant=obj, model=chosen)
            except EmbeddingModelError as exc:
                messages.error(request, str(exc))

    @admin.display(description="embedding")
    def embedding_state(self, assistant: Assistant) -> str:
        if assistant.embedding_error:
            return assistant.embedding_error
        if assistant.embedding_model != assistant.embedded_with:
            return f"re-embedding with {assistant.embedding_model}: {assistant.embedding_progress:.0%}"
        return f"{assistant.embedded_with}, up to date"

    @admin.display(description="status", ordering="status")
    def status_display(self, assistant: Assistant) -> SafeString:
        return self.status_badge(assistant.status)

    @admin.display(description="files", ordering="_files")
    def file_count(self, assistant: Assistant) -> int:
        return getattr(assistant, "_files", 0)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        # The name is the API's handle on the assistant; renaming would break every client using it.
        return (*self.readonly_fields, "name", "region") if obj else self.readonly_fields


class FileUploadForm(forms.ModelForm):
    upload = forms.FileField(
        required=False,
        help_text=f"One of {', '.join(sorted(SUPPORTED_EXTENSIONS))}. Uploading replaces the file's content "
        "and processes it again.",
    )
    metadata = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80, "style": "font-family: monospace"}),
        help_text='Flat JSON object, e.g. {"resource": "encyclopedia", "year": 2024}. '
        "Values: strings, numbers, booleans or lists of strings; no nulls; at most 16 KB.",
    )

    class Meta:
        model = File
        fields = ("assistant", "metadata")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["metadata"] = json.dumps(self.instance.metadata or {}, ensure_ascii=False)
        else:
            self.fields["upload"].required = True

    def clean_metadata(self) -> dict:
        try:
            return validate_metadata(self.cleaned_data.get("metadata") or None)
        except MetadataError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean(self) -> dict:
        cleaned = super().clean() or {}
        upload = cleaned.get("upload")
        if upload is not None:
            data = upload.read()
            try:
                services.file_check_upload(upload.name, data)
            except errors.ChatError as exc:
                self.add_error("upload", exc.message)
            cleaned["upload_bytes"] = data
        return cleaned


class ChunkInline(admin.TabularInline):
    model = Chunk
    extra = 0
    fields = ("ordinal", "pages", "tokens", "text")
    readonly_fields = ("ordinal", "pages", "tokens", "text")
    can_delete = False
    max_num = 0
    classes = ("collapse",)


@admin.register(File)
class FileAdmin(AssistantScopeMixin, admin.ModelAdmin, StatusFilterMixin):
    form = FileUploadForm
    list_display = (
        "name",
        "assistant",
        "status_display",
        "progress",
        "kind",
        "size_display",
        "metadata_display",
        "updated_on",
    )
    list_filter = ("status", "kind", ("assistant", admin.RelatedOnlyFieldListFilter))
    search_fields = ("name", "file_id")
    list_select_related = ("assistant",)
    readonly_fields = (
        "file_id",
        "name",
        "kind",
        "size",
        "status",
        "progress",
        "error_message",
        "content_hash",
        "created_on",
        "updated_on",
    )
    actions = ["reprocess"]
    inlines = [ChunkInline]

    class Media:
        # Polls `status_view` while the file is processing: ingestion runs in the jobs worker, another process, so
        # the page as rendered would say "Processing 0 %" until reloaded.
        js = ("assistant_chat/admin_file_status.js",)

    def get_urls(self) -> list[URLPattern]:
        extra = [
            path(
                "<path:object_id>/status/",
                self.admin_site.admin_view(self.status_view),
                name="assistant_chat_file_status",
            )
        ]
        return extra + super().get_urls()

    def status_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The file's processing status as JSON, for the change page's live status (same scope as the page)."""
        file = self.get_object(request, object_id)
        if file is None:
            raise Http404("File not found")
        if not self.has_view_permission(request, file):
            raise PermissionDenied
        return JsonResponse(
            {
                "status": file.status,
                "percent": int(file.percent_done * 100),
                "error_message": file.error_message,
                "processing": file.status == File.Status.PROCESSING,
            }
        )

    def get_queryset(self, request: HttpRequest) -> QuerySet[File]:
        return super().get_queryset(request).exclude(status=File.Status.DELETING)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["assistant", "upload", "metadata"]
        return [
            "assistant",
            "file_id",
            "name",
            "kind",
            "size",
            "status",
            "progress",
            "error_message",
            "metadata",
            "upload",
            "content_hash",
            "created_on",
            "updated_on",
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return (*self.readonly_fields, "assistant") if obj else ()

    @admin.display(description="status", ordering="status")
    def status_display(self, file: File) -> SafeString:
        if file.status == File.Status.PROCESSING_FAILED and file.error_message:
            return format_html("{}<br><small>{}</small>", self.status_badge(file.status), file.error_message)
        return self.status_badge(file.status)

    @admin.display(description="done", ordering="percent_done")
    def progress(self, file: File) -> SafeString:
        percent = int(file.percent_done * 100)
        return format_html(
            '<span class="file-progress" data-file-pk="{}" data-status="{}"><progress max="100" value="{}"></progress> '
            '<span class="file-percent">{}%</span></span>',
            file.pk,
            file.status,
            percent,
            percent,
        )

    @admin.display(description="size", ordering="size")
    def size_display(self, file: File) -> str:
        return f"{file.size / 1024:.1f} KB" if file.size < 1024 * 1024 else f"{file.size / 1048576:.1f} MB"

    @admin.display(description="metadata")
    def metadata_display(self, file: File) -> SafeString:
        return format_html_join(
            " ", "<code>{}={}</code>", ((k, json.dumps(v)) for k, v in (file.metadata or {}).items())
        )

    def save_model(self, request: HttpRequest, obj: File, form: forms.ModelForm, change: bool) -> None:
        data = form.cleaned_data.get("upload_bytes")
        upload = form.cleaned_data.get("upload")
        metadata = form.cleaned_data.get("metadata") or {}
        if data is not None and upload is not None:
            file, _op, _job = services.file_upload(
                assistant=form.cleaned_data["assistant"] if not change else obj.assistant,
                name=upload.name,
                data=data,
                metadata=metadata,
                file_id=obj.file_id if change else None,
            )
            obj.pk = file.pk
            obj.refresh_from_db()
            messages.info(request, f"{upload.name} is being processed; its status updates on this page.")
        elif change:
            File.objects.filter(pk=obj.pk).update(metadata=metadata)

    def delete_model(self, request: HttpRequest, obj: File) -> None:
        services.file_delete(file=obj)
        services.file_purge(file=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[File]) -> None:
        for file in queryset:
            self.delete_model(request, file)

    @admin.action(description="Process the selected files again")
    def reprocess(self, request: HttpRequest, queryset: QuerySet[File]) -> None:
        count = 0
        for file in queryset:
            services.file_reprocess(file=file)
            count += 1
        messages.info(request, f"{count} file(s) queued for processing.")


@admin.register(Operation)
class OperationAdmin(AssistantScopeMixin, admin.ModelAdmin):
    list_display = (
        "operation_id",
        "assistant",
        "operation_type",
        "file_id",
        "status",
        "percent_complete",
        "created_on",
    )
    list_filter = ("operation_type", "status", ("assistant", admin.RelatedOnlyFieldListFilter))
    readonly_fields = [f.name for f in Operation._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ApiKeyForm(forms.ModelForm):
    # Set by ApiKeyAdmin for staff limited to some assistants: they may not issue a key for every assistant.
    requires_scope = False

    class Meta:
        model = ApiKey
        fields = ("name", "assistants", "revoked")

    def clean_assistants(self) -> Any:
        assistants = self.cleaned_data.get("assistants")
        if self.requires_scope and not assistants:
            raise forms.ValidationError(
                "Choose the assistants this key may use: a key for every assistant needs a superuser or a room manager."
            )
        return assistants


@admin.register(ApiKey)
class ApiKeyAdmin(AssistantScopeMixin, admin.ModelAdmin):
    form = ApiKeyForm
    list_display = ("name", "prefix", "scope", "created_at", "last_used_at", "revoked")
    list_filter = ("revoked",)
    readonly_fields = ("prefix", "created_by", "created_at", "last_used_at")
    filter_horizontal = ("assistants",)

    @admin.display(description="assistants")
    def scope(self, key: ApiKey) -> str:
        names = [assistant.name for assistant in key.assistants.all()]
        return ", ".join(names) if names else "all (may create assistants)"

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiKey]:
        queryset = admin.ModelAdmin.get_queryset(self, request).prefetch_related("assistants")
        if selectors.staff_uses_every_assistant(user=request.user):
            return queryset
        # Keys scoped only to assistants this user may use (an unrestricted key reaches every assistant).
        outside = ApiKey.assistants.through.objects.exclude(
            assistant__in=selectors.assistants_for_staff(user=request.user)
        ).values("apikey_id")
        return queryset.filter(assistants__isnull=False).exclude(pk__in=outside).distinct()

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        form.requires_scope = not selectors.staff_uses_every_assistant(user=request.user)  # type: ignore[attr-defined]
        return form

    def save_model(self, request: HttpRequest, obj: ApiKey, form: forms.ModelForm, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        key, raw_key = services.api_key_create(name=obj.name, created_by=request.user)
        obj.pk = key.pk
        obj.prefix, obj.key_hash, obj.created_at = key.prefix, key.key_hash, key.created_at
        obj._state.adding = False
        obj._state.db = key._state.db
        messages.warning(
            request,
            format_html(
                "The new API key is <code>{}</code>. Copy it now: it is stored hashed and cannot be shown again.",
                raw_key,
            ),
        )


@admin.register(ModelEndpoint)
class ModelEndpointAdmin(admin.ModelAdmin):
    list_display = ("model_id", "label", "base_url", "upstream_model", "accepts_temperature", "enabled")
    list_filter = ("enabled",)
    search_fields = ("model_id", "label", "upstream_model")


class ModelAliasForm(forms.ModelForm):
    class Meta:
        model = ModelAlias
        fields = ("alias", "target", "note", "enabled")

    def clean(self) -> dict:
        """Refuse an alias whose target is no configured model, or that would close a cycle of aliases, with the
        same words the API would answer with; the registry is the one that follows aliases."""
        cleaned = super().clean() or {}
        alias, target = cleaned.get("alias"), cleaned.get("target")
        if not alias or not target:
            return cleaned
        if alias == target:
            self.add_error("target", "An alias cannot name itself.")
            return cleaned
        current = turns.registry()
        pairs = dict(current.aliases)
        if self.instance.pk and self.instance.alias != alias:
            pairs.pop(self.instance.alias, None)  # renamed: the old name stops being an alias
        pairs[alias] = target  # checked even when disabled, so that enabling it later cannot break anything
        candidate = Registry(replace(current.settings, aliases=tuple(pairs.items())))
        try:
            self.answering = candidate.spec(alias)
        except (AliasError, UnknownModel) as exc:
            self.add_error("target", str(exc))
            return cleaned
        self.unavailable = candidate.unavailable_reason(self.answering)
        return cleaned


@admin.register(ModelAlias)
class ModelAliasAdmin(admin.ModelAdmin):
    form = ModelAliasForm
    list_display = ("alias", "target", "answered_by", "enabled", "note")
    list_filter = ("enabled",)
    search_fields = ("alias", "target", "note")

    @admin.display(description="answered by")
    def answered_by(self, obj: ModelAlias) -> str:
        try:
            return turns.registry().spec(obj.alias).id if obj.enabled else "(disabled)"
        except UnknownModel as exc:
            return f"nothing: {exc}"

    def save_model(self, request: HttpRequest, obj: ModelAlias, form: forms.ModelForm, change: bool) -> None:
        super().save_model(request, obj, form, change)
        reason = getattr(form, "unavailable", None)
        if reason:
            messages.warning(request, f'"{obj.alias}" now leads to a model that cannot answer yet. {reason}.')


# Rooms, conversations and usage live in their own module; importing it registers them.
from .review import admin as review_admin  # noqa: E402, F401
