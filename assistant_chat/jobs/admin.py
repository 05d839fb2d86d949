"""The queue in the admin: every job with its kind, what it works on, attempts, worker and failure reason, and
the workers with their heartbeats. Read-only, except *Run again* for failed jobs."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django_tasks import TaskResultStatus
from django_tasks_db.admin import DBTaskResultAdmin
from django_tasks_db.models import DBTaskResult

from ..models import File
from . import kinds
from .heartbeats import is_gone
from .models import WorkerHeartbeat

admin.site.unregister(DBTaskResult)


@admin.register(DBTaskResult)
class JobAdmin(DBTaskResultAdmin):
    list_display: Any = (
        "short_id",
        "kind",
        "target",
        "status_badge",
        "attempts",
        "worker",
        "enqueued_at",
        "took",
        "reason",
    )
    list_filter = ("status", "task_path", "priority")
    search_fields = ("id", "task_path", "traceback")
    actions = ["run_again"]
    list_per_page = 50

    @admin.display(description="id")
    def short_id(self, row: DBTaskResult) -> str:
        return str(row.pk)[:8]

    @admin.display(description="kind", ordering="task_path")
    def kind(self, row: DBTaskResult) -> str:
        return kinds.kind_name(row.task_path)

    @admin.display(description="works on")
    def target(self, row: DBTaskResult) -> str:
        arguments = (row.args_kwargs or {}).get("kwargs", {})
        if "file_id" in arguments:
            name = File.objects.filter(pk=arguments["file_id"]).values_list("name", flat=True).first()
            return f"file {name}" if name else f"file #{arguments['file_id']} (deleted)"
        return ", ".join(f"{key}={value}" for key, value in arguments.items())

    @admin.display(description="status", ordering="status")
    def status_badge(self, row: DBTaskResult) -> SafeString:
        colours = {"SUCCESSFUL": "#1a7f37", "FAILED": "#cf222e", "RUNNING": "#0969da", "READY": "#9a6700"}
        label = row.status
        if row.status == TaskResultStatus.READY and row.worker_ids:
            label = "READY (retry)"
        return format_html('<b style="color:{}">{}</b>', colours.get(row.status, "#57606a"), label)

    @admin.display(description="attempts")
    def attempts(self, row: DBTaskResult) -> str:
        kind = kinds.kind_of(row.task_path)
        allowed = kind.attempts_allowed if kind else settings.JOBS_MAX_ATTEMPTS
        return f"{len(row.worker_ids)} of {allowed}"

    @admin.display(description="worker")
    def worker(self, row: DBTaskResult) -> str:
        return row.worker_ids[-1] if row.worker_ids else "-"

    @admin.display(description="took")
    def took(self, row: DBTaskResult) -> str:
        if row.started_at is None:
            return "-"
        end = row.finished_at or timezone.now()
        return f"{(end - row.started_at).total_seconds():.1f} s"

    @admin.display(description="last failure")
    def reason(self, row: DBTaskResult) -> str:
        lines = [line for line in (row.traceback or "").strip().splitlines() if line.strip()]
        return lines[-1][:200] if lines else ""

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Run the selected failed jobs again")
    def run_again(self, request: HttpRequest, queryset: QuerySet[DBTaskResult]) -> None:
        # The admin's actions need the change permission, which nobody has on this read-only list; staff with the
        # jobs app's "view" permission may requeue failed work (nothing else is changed).
        count = queryset.filter(status=TaskResultStatus.FAILED).update(
            status=TaskResultStatus.READY, run_after=timezone.now(), finished_at=None, worker_ids=[]
        )
        messages.info(request, f"{count} failed job(s) queued again.")

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        if not request.user.has_perm("django_tasks_database.view_dbtaskresult"):
            actions.pop("run_again", None)
        return actions


@admin.register(WorkerHeartbeat)
class WorkerAdmin(admin.ModelAdmin):
    list_display = ("worker_id", "alive", "host", "pid", "job_kind", "job_id", "jobs_done", "beat_at", "started_at")
    readonly_fields = [field.name for field in WorkerHeartbeat._meta.fields]

    @admin.display(description="alive", boolean=True)
    def alive(self, beat: WorkerHeartbeat) -> bool:
        return not is_gone(beat, silent_for=settings.JOBS_HEARTBEAT_STALE_SECONDS)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
