"""Usage reads for the admin's usage report: turns, tokens and feedback votes per day, room, member and model.

A turn is one assistant message; its member is the author of the question it answers (`reply_to.author`). Callers
pass the rooms the viewer may see (`selectors.rooms_managed_by`). Reads only; no HTTP here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Count, F, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce, Substr, TruncDate
from django.utils import timezone

from ..models import Message, MessageFeedback, Room
from ..selectors import display_name

DIMENSIONS = ("day", "room", "member", "model")


@dataclass
class UsageRow:
    day: date | None = None
    room: str = ""
    room_id: int | None = None
    member: str = ""
    member_id: int | None = None
    model: str = ""
    turns: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    feedback_up: int = 0  # members' votes on these answers
    feedback_down: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class UsageReport:
    rows: list[UsageRow] = field(default_factory=list)  # at most MAX_ROWS, newest and largest first
    total: UsageRow = field(default_factory=UsageRow)
    groups: int = 0  # how many groups there were before the cut


def day_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """[start 00:00, end+1 00:00) in the current time zone, so that both days are included whole."""
    zone = timezone.get_current_timezone()
    return (
        datetime.combine(start, time.min, tzinfo=zone),
        datetime.combine(end + timedelta(days=1), time.min, tzinfo=zone),
    )


MAX_ROWS = 500


def _day() -> Any:
    """The local day of `created_at`. SQLite stores UTC text: in UTC the day is its first ten characters, which
    spares a Python date conversion per row (the bulk of the report's time at 100k answers)."""
    if connection.vendor == "sqlite" and timezone.get_current_timezone_name() == "UTC":
        return Substr("created_at", 1, 10)
    return TruncDate("created_at", tzinfo=timezone.get_current_timezone())


def _votes(value: str) -> Subquery:
    votes = (
        MessageFeedback.objects.filter(message=OuterRef("pk"), value=value)
        .values("message")
        .annotate(n=Count("id"))
        .values("n")
    )
    return Subquery(votes, output_field=IntegerField())


def usage_report(
    *,
    rooms: QuerySet[Room],
    start: date,
    end: date,
    room_id: int | None = None,
    member_id: int | None = None,
    model: str | None = None,
    group_by: tuple[str, ...] = DIMENSIONS,
) -> UsageReport:
    """Turns and tokens of assistant messages answered between `start` and `end` (inclusive days), grouped by the
    dimensions in `group_by`, newest day first, then by most tokens."""
    since, until = day_bounds(start, end)
    answers = Message.objects.filter(
        role=Message.Role.ASSISTANT,
        created_at__gte=since,
        created_at__lt=until,
        conversation__room__in=rooms,
    )
    if room_id is not None:
        answers = answers.filter(conversation__room_id=room_id)
    if member_id is not None:
        answers = answers.filter(reply_to__author_id=member_id)
    if model:
        answers = answers.filter(model=model)
    # Votes per answer as subqueries, so that summing them does not multiply the token sums (a join would).
    answers = answers.annotate(
        votes_up=Coalesce(_votes(MessageFeedback.Value.UP), 0),
        votes_down=Coalesce(_votes(MessageFeedback.Value.DOWN), 0),
    )
    keys: dict[str, object] = {}
    if "day" in group_by:
        keys["g_day"] = _day()
    if "room" in group_by:
        keys["g_room"] = F("conversation__room_id")
    if "member" in group_by:
        keys["g_member"] = F("reply_to__author_id")
    if "model" in group_by:
        keys["g_model"] = F("model")
    grouped = answers.values(**keys) if keys else answers  # type: ignore[arg-type]
    aggregates = {
        "turns": Count("id"),
        "failed": Count("id", filter=Q(status=Message.Status.FAILED)),
        "prompt": Sum("prompt_tokens"),
        "completion": Sum("completion_tokens"),
        "up": Sum("votes_up"),
        "down": Sum("votes_down"),
    }
    found: list[dict[str, Any]]
    if keys:
        found = list(grouped.annotate(**aggregates).order_by())  # type: ignore[arg-type, union-attr]
    else:
        found = [answers.aggregate(**aggregates)]
    room_names: dict[Any, str] = dict(
        Room.objects.filter(pk__in={r.get("g_room") for r in found}).values_list("pk", "name")
    )
    users: dict[Any, Any] = {
        u.pk: u for u in get_user_model().objects.filter(pk__in={r.get("g_member") for r in found})
    }
    report = UsageReport()
    for item in found:
        if not item["turns"]:
            continue
        member = users.get(item.get("g_member"))
        day = item.get("g_day")
        row = UsageRow(
            day=date.fromisoformat(day) if isinstance(day, str) else day,
            room=room_names.get(item.get("g_room"), ""),
            room_id=item.get("g_room"),
            member=display_name(member) if member else ("(unknown)" if "member" in group_by else ""),
            member_id=item.get("g_member"),
            model=(item.get("g_model") or "(none)") if "model" in group_by else "",
            turns=item["turns"],
            failed=item["failed"],
            prompt_tokens=item["prompt"] or 0,
            completion_tokens=item["completion"] or 0,
            feedback_up=item["up"] or 0,
            feedback_down=item["down"] or 0,
        )
        report.rows.append(row)
        for name in ("turns", "failed", "prompt_tokens", "completion_tokens", "feedback_up", "feedback_down"):
            setattr(report.total, name, getattr(report.total, name) + getattr(row, name))
    report.rows.sort(key=lambda r: (-(r.day.toordinal() if r.day else 0), -r.total_tokens, r.room, r.member, r.model))
    report.groups = len(report.rows)
    del report.rows[MAX_ROWS:]  # the totals still cover every group
    return report
