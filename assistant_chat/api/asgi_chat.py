"""The chat endpoints served by a lean ASGI handler beside Django: the same views, without Django's per-request
costs, because time-to-first-token is what users feel.

chatsite/asgi.py sends `POST /assistant/chat/<name>` and `POST /assistant/chat/<name>/chat/completions` here and
every other request to Django. Through Django's handler a chat request spent ~15 ms before the view's first
query (a thread made for the request, hence a new database connection, and thread hops through the middleware
chain). Here the view (`chat.respond`) runs on the event loop, its database work runs on `db_threads`, whose
connections persist, and what the site's middleware does to an API response (host check, security headers) is
done by calling those middleware's own hooks. Django's parts are reused: `ASGIRequest`, reading the body,
request signals, disconnect handling and sending (`ASGIHandler.handle`). Imported only by chatsite/asgi.py.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core import signals
from django.core.cache import caches, close_caches
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.base import reset_urlconf
from django.core.handlers.exception import response_for_exception
from django.db import close_old_connections, reset_queries
from django.http import HttpRequest, HttpResponseBase
from django.urls import set_script_prefix
from django.utils.module_loading import import_string

from . import chat, db_threads

logger = logging.getLogger(__name__)

ASGIApp = Callable[..., Awaitable[None]]

# The same routes as api/urls.py (`<str:name>` matches one path segment).
CHAT_PATH = re.compile(r"/assistant/chat/(?P<name>[^/]+)(?P<completions>/chat/completions)?")

# Middleware whose hooks apply to API responses and do no I/O: called inline, in the site's order.
INLINE_MIDDLEWARE = {
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
}
# Middleware with nothing to do for these views: sessions, users, messages and CSRF serve the site's pages (the
# views are csrf_exempt and authenticate by API key), WhiteNoise serves only STATIC_URL, CSP protects pages.
INERT_MIDDLEWARE = {
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",  # a policy for HTML pages; these views answer JSON and event streams
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
}


# `request_started` and `request_finished` receivers that may run on the event loop's thread (see
# ChatHandler._request_started and ChatHandler._close_response).
INLINE_RECEIVERS = {reset_queries, close_old_connections}
INLINE_FINISHED_RECEIVERS = {close_old_connections, close_caches, reset_urlconf}


def _no_view(request: HttpRequest) -> None:  # middleware need a get_response; the handler calls the view itself
    return None


class ChatHandler(ASGIHandler):
    """Django's ASGI handler with the middleware chain replaced by the chat view and the inline hooks."""

    def __init__(self) -> None:
        # Not ASGIHandler.__init__: it would build the full middleware chain, which this handler exists to skip.
        self._inline = [import_string(path)(_no_view) for path in settings.MIDDLEWARE if path in INLINE_MIDDLEWARE]

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        # Django wraps this in a ThreadSensitiveContext, i.e. a new thread per request; nothing here needs one.
        await self.handle(scope, receive, send)

    async def handle(self, scope: dict, receive: Any, send: Any) -> None:
        """Django 5.2's `ASGIHandler.handle`, except that `request_started` runs inline when its receivers are
        only Django's own (see `_request_started`)."""
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        await self._request_started(scope)
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            assert error_response is not None
            body_file.close()
            await self.send_response(error_response, send)
            await sync_to_async(error_response.close)()
            return

        async def process_request(request: HttpRequest, send: Any) -> HttpResponseBase:
            response = await self.run_get_response(request)
            try:
                await self.send_response(response, send)
            except asyncio.CancelledError:
                pass  # the client disconnected during send_response
            return response

        # Django's disconnect handling: whichever ends first, the view or the client, the other is cancelled.
        tasks = [
            asyncio.create_task(self.listen_for_disconnect(receive)),
            asyncio.create_task(process_request(request, send)),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                try:
                    task.result()
                except RequestAborted:
                    pass
                except AssertionError:
                    body_file.close()
                    raise
            else:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        try:
            response = tasks[1].result()
        except asyncio.CancelledError:
            await signals.request_finished.asend(sender=self.__class__)
        else:
            if response is not None:
                await self._close_response(response)
        body_file.close()

    async def _request_started(self, scope: dict) -> None:
        # Django sends it through sync_to_async, a hop to another thread and back (~0.4 ms before the view). Its
        # own receivers act on the calling thread's database connections, and the event loop's thread has none
        # (Django refuses to open them there), so inline they do exactly what they would do on that thread.
        sync_receivers, async_receivers = signals.request_started._live_receivers(self.__class__)
        if async_receivers or any(receiver not in INLINE_RECEIVERS for receiver in sync_receivers):
            await signals.request_started.asend(sender=self.__class__, scope=scope)
            return
        for receiver in sync_receivers:
            receiver(signal=signals.request_started, sender=self.__class__, scope=scope)

    async def _close_response(self, response: HttpResponseBase) -> None:
        # Django closes a response on another thread (~0.3 ms of thread hops and GIL hand-offs after each stream,
        # just when the client's next request arrives). Closing runs the content's closers (ours only cancel a
        # task, and are safe on the loop) and `request_finished`, whose own receivers do nothing on the event
        # loop's thread: it has no database connections, and no cache was opened in this request's context.
        sync_receivers, async_receivers = signals.request_finished._live_receivers(self.__class__)
        if (
            async_receivers
            or any(receiver not in INLINE_FINISHED_RECEIVERS for receiver in sync_receivers)
            or any(True for _ in caches.all(initialized_only=True))
        ):
            await sync_to_async(response.close)()
        else:
            response.close()

    async def run_get_response(self, request: HttpRequest) -> HttpResponseBase:  # type: ignore[override]
        try:
            response = self._request_hooks(request) or await self._view(request)
        except Exception as exc:  # what Django's exception wrapper does, e.g. 400 for a host not in ALLOWED_HOSTS
            response = await sync_to_async(response_for_exception, thread_sensitive=False)(request, exc)
        for middleware in reversed(self._inline):
            if hasattr(middleware, "process_response"):
                response = middleware.process_response(request, response)
        return response

    def _request_hooks(self, request: HttpRequest) -> HttpResponseBase | None:
        for middleware in self._inline:
            if hasattr(middleware, "process_request"):
                response = middleware.process_request(request)
                if response is not None:
                    return response
        return None

    async def _view(self, request: HttpRequest) -> HttpResponseBase:
        match = CHAT_PATH.fullmatch(request.path_info)
        assert match is not None  # the router sent only matching paths here
        return await chat.respond(request, match["name"], standard=not match["completions"], run_sync=db_threads.run)


def chat_fast_path(django_app: ASGIApp) -> ASGIApp:
    """The HTTP app: chat POSTs to `ChatHandler`, the rest to `django_app`.

    If the site's middleware list holds anything this module does not know, every request goes to Django: a
    new middleware may matter to the API, and being slower is better than skipping it.
    """
    unknown = [path for path in settings.MIDDLEWARE if path not in INLINE_MIDDLEWARE | INERT_MIDDLEWARE]
    if settings.FORCE_SCRIPT_NAME:
        return django_app  # paths are rewritten then; Django knows how
    if unknown:
        logger.warning("Chat endpoints go through Django's handler: unknown middleware %s", ", ".join(unknown))
        return django_app
    handler = ChatHandler()

    async def app(scope: dict, receive: Any, send: Any) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and not scope.get("root_path")
            and CHAT_PATH.fullmatch(scope["path"])
        ):
            await handler(scope, receive, send)
        else:
            await django_app(scope, receive, send)

    return app
