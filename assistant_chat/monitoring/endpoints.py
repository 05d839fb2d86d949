"""/healthz, /readyz and /metrics, answered before Django (no host check, no SSL redirect, no session), so that
a load balancer or Prometheus can ask each Daphne process directly on its own port.

- /healthz: liveness. 200 while the process's event loop runs; it touches no service.
- /readyz: readiness (`health.readiness`): 200 when the database, the channel layer and a job worker answer,
  else 503 with `failed` naming which; each check's detail only for the clients that may read /metrics.
- /metrics: Prometheus text. Only for a client in METRICS_ALLOWED_NETWORKS (default loopback; behind the proxy
  the client is the one in X-Forwarded-For, which Daphne's --proxy-headers reads) or one that presents
  METRICS_TOKEN as `Authorization: Bearer`. Others get 403.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings

from . import exposition, health

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[..., Awaitable[Any]], Callable[..., Awaitable[Any]]], Awaitable[None]]


def operations_endpoints(app: ASGIApp) -> ASGIApp:
    async def handle(scope: Scope, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path in ("/healthz", "/readyz", "/metrics"):
            if scope.get("method") not in ("GET", "HEAD"):
                await _respond(send, 405, b"only GET\n", b"text/plain; charset=utf-8", extra=[(b"allow", b"GET, HEAD")])
            elif path == "/healthz":
                await _json(send, 200, {"status": "alive"})
            elif path == "/readyz":
                report = await health.readiness()
                if not allowed(scope):
                    # Which part failed is for everyone; the details (addresses, errors) only for operators.
                    report = {"status": report["status"], "failed": report["failed"]}
                await _json(send, 200 if report["status"] == "ready" else 503, report)
            else:
                await _metrics(scope, send)
            return
        await app(scope, receive, send)

    return handle


async def _metrics(scope: Scope, send: Any) -> None:
    if not allowed(scope):
        await _respond(
            send,
            403,
            b"Metrics are for METRICS_ALLOWED_NETWORKS or a client presenting METRICS_TOKEN.\n",
            b"text/plain; charset=utf-8",
        )
        return
    body, content_type = await sync_to_async(exposition.render, thread_sensitive=False)()
    await _respond(send, 200, body, content_type.encode())


def allowed(scope: Scope) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        headers = dict(scope.get("headers") or [])
        scheme, _, presented = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode()):
            return True
    client = (scope.get("client") or ("", 0))[0]
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return False
    return any(address in network for network in _networks())


def _networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(item, strict=False) for item in settings.METRICS_ALLOWED_NETWORKS]


async def _json(send: Any, status: int, payload: dict[str, Any]) -> None:
    await _respond(send, status, json.dumps(payload).encode() + b"\n", b"application/json")


async def _respond(send: Any, status: int, body: bytes, content_type: bytes, extra: list | None = None) -> None:
    headers = [(b"content-type", content_type), (b"cache-control", b"no-store"), *(extra or [])]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
