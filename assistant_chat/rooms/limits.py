"""What a room socket must pass besides membership: an exact Origin check, and a cap on sockets per member.

`ExactOriginValidator` wraps the websocket app (chatsite/asgi.py): the browser's Origin must be this site's own
origin, scheme, host and port (the Host the socket was opened on, if that host is in ALLOWED_HOSTS), or one of
CHAT_ALLOWED_ORIGINS exactly, so that no other site, port or plain-http page can open a socket with a member's
cookies. `admit`/`release` are called by the consumer: a member holds at most CHAT_MAX_SOCKETS_PER_USER sockets in
one process; one more is accepted only to be told why, then closed (4429). Imports no models and no consumer.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

from . import events

DEFAULT_PORTS = {"http": 80, "https": 443}
TOO_MANY_SOCKETS = 4429


def normalize_origin(origin: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) origin, the port made explicit; None for anything else."""
    try:
        parts = urlsplit(origin.strip().lower())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/") or parts.query:
        return None
    return parts.scheme, parts.hostname, port or DEFAULT_PORTS[parts.scheme]


def origin_allowed(scope: dict[str, Any]) -> bool:
    headers = dict(scope.get("headers") or [])
    origin = normalize_origin(headers.get(b"origin", b"").decode("latin-1"))
    if origin is None:
        return False
    allowed = {normalize_origin(entry) for entry in settings.CHAT_ALLOWED_ORIGINS}
    if origin in allowed:
        return True
    # Same origin: the page that opens the socket was served from the address the socket connects to.
    host_header = headers.get(b"host", b"").decode("latin-1")
    domain, _port = split_domain_port(host_header)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return False
    scheme = "https" if scope.get("scheme") in ("wss", "https") else "http"
    return origin == normalize_origin(f"{scheme}://{host_header}")


class ExactOriginValidator:
    """ASGI middleware: a websocket whose Origin is not exactly allowed is refused at the handshake."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not origin_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)


class SocketSlots:
    """Open sockets per member in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: defaultdict[int, set[int]] = defaultdict(set)

    def claim(self, user_id: int, socket: object) -> bool:
        with self._lock:
            held = self._open[user_id]
            if len(held) >= settings.CHAT_MAX_SOCKETS_PER_USER:
                return False
            held.add(id(socket))
            return True

    def release(self, user_id: int, socket: object) -> None:
        with self._lock:
            held = self._open.get(user_id)
            if held is not None:
                held.discard(id(socket))
                if not held:
                    del self._open[user_id]

    def count(self, user_id: int) -> int:
        with self._lock:
            return len(self._open.get(user_id, ()))


slots = SocketSlots()


async def admit(consumer: Any) -> bool:
    """Claim a socket slot for the consumer's member. Over the cap the socket is accepted only to say why in an
    `error` frame, then closed with 4429; returns False then."""
    if slots.claim(consumer.user_id, consumer):
        consumer.holds_slot = True
        return True
    limit = settings.CHAT_MAX_SOCKETS_PER_USER
    await consumer.accept()
    message = f"You have {limit} connections to rooms open, the most allowed. Close a tab or window and reload."
    await consumer.send(text_data=events.encode(events.error("too_many_sockets", message)))
    await consumer.close(code=TOO_MANY_SOCKETS, reason="Too many open connections")
    return False


def release(consumer: Any) -> None:
    if getattr(consumer, "holds_slot", False):
        slots.release(consumer.user_id, consumer)
        consumer.holds_slot = False
