"""Job kinds: the `job` decorator, the registry the worker and the admin read, and `enqueue`.

A kind is a django-tasks `Task` (so `task_path` in the queue names its function) plus what the queue does not
know: a short name for metrics and the admin, how many attempts it gets, and `give_up`, which leaves the job's
object in a final state when the last attempt fails. Imported by `services` (to queue work) and the worker.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django_tasks import TaskContext, task
from django_tasks.base import Task

KIND_MODULES = ("assistant_chat.jobs.ingest", "assistant_chat.jobs.reembed")


@dataclass(frozen=True)
class JobKind:
    name: str
    task: Task
    give_up: Callable[[dict[str, Any], str], None]
    max_attempts: int | None = None

    @property
    def attempts_allowed(self) -> int:
        return self.max_attempts or settings.JOBS_MAX_ATTEMPTS


_KINDS: dict[str, JobKind] = {}  # by task path


def job(
    name: str, *, give_up: Callable[[dict[str, Any], str], None], max_attempts: int | None = None, priority: int = 0
) -> Callable[[Callable[..., Any]], Task]:
    """Make a function a job kind. The function takes keyword arguments (JSON values) and must be idempotent.
    When it raises on its last attempt, `give_up(kwargs, reason)` runs before the failure is recorded."""

    def decorate(func: Callable[..., Any]) -> Task:
        @functools.wraps(func)
        def run(context: TaskContext, **kwargs: Any) -> Any:
            try:
                return func(**kwargs)
            except Exception as exc:
                if context.attempt >= kind.attempts_allowed or not durable():
                    give_up(kwargs, failure_reason(exc))
                raise

        # The queue stores the task's import path and checks that it takes `context` first: keep the function's
        # name and module, not its signature (no __wrapped__).
        del run.__wrapped__  # type: ignore[attr-defined]
        task_obj: Task = task(takes_context=True, priority=priority)(run)
        kind = JobKind(name=name, task=task_obj, give_up=give_up, max_attempts=max_attempts)
        _KINDS[task_obj.module_path] = kind
        return task_obj

    return decorate


def failure_reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def load_kinds() -> dict[str, JobKind]:
    """Every kind, by task path (importing their modules registers them)."""
    for module in KIND_MODULES:
        importlib.import_module(module)
    return _KINDS


def kind_of(task_path: str) -> JobKind | None:
    return load_kinds().get(task_path)


def kind_name(task_path: str) -> str:
    kind = kind_of(task_path)
    return kind.name if kind else task_path.rsplit(".", 1)[-1]


def durable() -> bool:
    """Whether jobs are database rows run by workers (JOBS_MODE=worker), not run in the caller."""
    return settings.JOBS_MODE != "immediate"


def enqueue(job_task: Task, **kwargs: Any) -> str | None:
    """Queue a job; returns its id. Call it inside the transaction that makes the change the job completes: the
    row commits with that change or not at all, so no change is left without its job. In immediate mode the
    job runs here once the transaction commits (and has no id)."""
    if durable():
        return str(job_task.enqueue(**kwargs).id)
    transaction.on_commit(lambda: job_task.enqueue(**kwargs))
    return None
