"""Worker heartbeats: written by each worker, read by /readyz and by the recovery of lost jobs."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from .models import WorkerHeartbeat

HOST = socket.gethostname()[:255]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_gone(beat: WorkerHeartbeat, *, silent_for: float, now: datetime | None = None) -> bool:
    """A worker is gone when its process is (same machine), or when it has been silent for `silent_for` s."""
    now = now or timezone.now()
    if beat.host == HOST and not pid_alive(beat.pid):
        return True
    return beat.beat_at < now - timedelta(seconds=silent_for)


def live_workers(*, silent_for: float | None = None) -> list[WorkerHeartbeat]:
    """Workers with a recent heartbeat (JOBS_HEARTBEAT_STALE_SECONDS unless told)."""
    limit = settings.JOBS_HEARTBEAT_STALE_SECONDS if silent_for is None else silent_for
    now = timezone.now()
    return [beat for beat in WorkerHeartbeat.objects.all() if not is_gone(beat, silent_for=limit, now=now)]


def newest_beat() -> WorkerHeartbeat | None:
    return WorkerHeartbeat.objects.order_by("-beat_at").first()
