"""The project's server: Daphne, with the request limits that Twisted and Daphne do not enforce before Django runs.

Under plain Daphne, Twisted reads every request body whole (and MIME-parses `multipart/form-data` POSTs in memory)
before Django sees the request, so no Django setting or view can refuse a huge body in time (django/daphne#483,
twisted/twisted#4519). Here the HTTP channel refuses a body over its route's limit with 413 as soon as its
Content-Length says so, cuts a chunked body off at the limit, answers an over-long request line with 414 and
over-long headers with 431, and Twisted's own form parsing is off (Django parses forms itself, streaming files to
disk). Run it as `python -m chatsite.server` with Daphne's own options (bin/run and the live test servers do).
Limits come from settings (REQUEST_MAX_BODY_BYTES, FILE_MAX_BYTES, REQUEST_MAX_URL_BYTES); see `route_body_limit`.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from typing import Any

from daphne.cli import CommandLineInterface  # isort: skip  (daphne.server installs the asyncio reactor first)
from daphne.http_protocol import HTTPFactory, WebRequest
from daphne.server import Server
from twisted.internet import reactor as _reactor
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web import http

reactor: Any = _reactor  # the installed asyncio reactor (its interfaces do not type-check as a module)

# Routes that carry a file upload (the API's upload and upsert, the admin's file form); every other body is small.
UPLOAD_ROUTES = re.compile(rb"/assistant/files/[^/?]+(?:/[^/?]+)?|/admin/assistant_chat/file/(?:add|[^/?]+/change)/")
REASONS = {
    400: b"Bad Request",
    413: b"Content Too Large",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
}


@dataclass(frozen=True)
class Limits:
    """What one connection may send, from settings (read when the server starts)."""

    body_bytes: int  # any request body but an upload
    upload_body_bytes: int  # an upload's whole multipart body: the file plus the form around it
    url_bytes: int  # the request target (path and query)
    linger_seconds: float  # how long a refused client may go on sending (discarded) so it reads the answer

    @classmethod
    def from_settings(cls) -> Limits:
        from django.conf import settings

        return cls(
            body_bytes=settings.REQUEST_MAX_BODY_BYTES,
            upload_body_bytes=settings.FILE_MAX_BYTES + settings.REQUEST_UPLOAD_OVERHEAD_BYTES,
            url_bytes=settings.REQUEST_MAX_URL_BYTES,
            linger_seconds=settings.REQUEST_LINGER_SECONDS,
        )


def route_body_limit(limits: Limits, method: bytes, target: bytes) -> int:
    """The largest body `method target` may carry: uploads get the file limit plus the form's overhead."""
    path = target.split(b"?", 1)[0]
    if method.upper() in (b"POST", b"PUT") and UPLOAD_ROUTES.fullmatch(path):
        return limits.upload_body_bytes
    return limits.body_bytes


def error_body(target: bytes, status: int, message: str) -> tuple[bytes, bytes]:
    """(content type, body): Pinecone's error envelope under /assistant/, plain text elsewhere."""
    if target.startswith(b"/assistant/"):
        code = "INVALID_ARGUMENT"
        envelope = {"error": {"code": code, "message": message}, "status": status}
        return b"application/json", json.dumps(envelope).encode()
    return b"text/plain; charset=utf-8", (message + "\n").encode()


def _size(n: int) -> str:
    return f"{n / 1048576:.1f} MB" if n >= 1048576 else f"{n / 1024:.0f} KB" if n >= 1024 else f"{n} bytes"


class BoundedChannel(http.HTTPChannel):
    """Twisted's HTTP/1.1 channel with limits checked as the request arrives, not after it has been read."""

    def __init__(self, limits: Limits) -> None:
        super().__init__()
        self.limits = limits
        # LineReceiver drops a connection silently past MAX_LENGTH; past the URL limit we answer 414 instead.
        self.MAX_LENGTH = max(limits.url_bytes + 1024, 16384)
        self._in_headers = False  # the request line has been read, headers are arriving
        self._refused = False

    # --- request line and headers ---

    def lineReceived(self, line: bytes) -> None:
        if self._refused:
            return
        if not self._in_headers and line:
            parts = line.split(b" ")
            target = parts[1] if len(parts) == 3 else b""
            if len(target) > self.limits.url_bytes:
                self.refuse(414, target[:64], f"The URL is longer than {_size(self.limits.url_bytes)}")
                return
            self._in_headers = True
        elif self._receivedHeaderSize + len(line) > self.totalHeadersSize:
            self.refuse(431, self._path, f"The request's headers are larger than {_size(self.totalHeadersSize)}")
            return
        super().lineReceived(line)

    def lineLengthExceeded(self, line: bytes) -> None:
        if self._in_headers:
            self.refuse(431, b"", "A request header line is too long")
        else:
            parts = line.split(b" ")
            target = parts[1] if len(parts) > 1 else b""
            self.refuse(414, target[:64], f"The URL is longer than {_size(self.limits.url_bytes)}")

    def allHeadersReceived(self) -> None:
        request = self.requests[-1]
        limit = route_body_limit(self.limits, self._command, self._path)
        request.body_limit = limit
        if self.length is not None and self.length > limit:
            # Refused on the header: nothing of the body is read, and no `100 Continue` invites it.
            self.refuse(
                413,
                self._path,
                f"The request body is {_size(self.length)}; the largest accepted here is {_size(limit)}",
            )
            return
        super().allHeadersReceived()

    def body_over_limit(self, request: Any) -> None:
        """A chunked body passed its route's limit: answer now and read no further."""
        self.refuse(413, self._path, f"The request body is larger than {_size(request.body_limit)}")

    def allContentReceived(self) -> None:
        if not self._refused:
            self._in_headers = False
            super().allContentReceived()

    def rawDataReceived(self, data: bytes) -> None:
        if not self._refused:
            super().rawDataReceived(data)

    def _respondToBadRequestAndDisconnect(self) -> None:
        # Twisted's bare `400` with no body, for malformed HTTP: say what it is.
        self.refuse(400, getattr(self, "_path", b""), "The request is not valid HTTP/1.1")

    # --- refusing ---

    def refuse(self, status: int, target: bytes, message: str) -> None:
        """Answer `status` with `message` and close: the rest of what the client sends is read and dropped (for a
        few seconds at most) so that it sees this answer rather than a reset connection."""
        transport: Any = self.transport
        if self._refused or transport is None:
            return
        self._refused = True
        self.persistent = False
        content_type, body = error_body(target or b"", status, message)
        head = b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % (
            status,
            REASONS.get(status, b"Error"),
            content_type,
            len(body),
        )
        transport.write(head + body)
        self.setTimeout(None)
        if hasattr(transport, "loseWriteConnection"):
            transport.loseWriteConnection()  # FIN after the answer; reading goes on until the client closes
        else:
            transport.loseConnection()
        self._linger = reactor.callLater(self.limits.linger_seconds, transport.abortConnection)

    def dataReceived(self, data: bytes) -> None:
        if self._refused:
            return  # discarded: a refused body is never buffered
        super().dataReceived(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        linger = getattr(self, "_linger", None)
        if linger is not None and linger.active():
            linger.cancel()
        super().connectionLost(reason)


class BoundedRequest(WebRequest):
    """Daphne's request without Twisted's in-memory form parsing, counting a chunked body against its limit."""

    body_limit = 0

    def __init__(self, channel: Any, *args: Any, **kwargs: Any) -> None:
        kwargs["parsePOSTFormSubmission"] = False  # Django parses forms, streaming files to disk
        super().__init__(channel, *args, **kwargs)
        self._body_bytes = 0

    def handleContentChunk(self, data: bytes) -> None:
        channel = self.channel
        if channel is None or channel._refused:
            return
        self._body_bytes += len(data)
        if self.body_limit and self._body_bytes > self.body_limit:
            channel.body_over_limit(self)
            return
        super().handleContentChunk(data)


class BoundedHTTPFactory(HTTPFactory):
    def __init__(self, server: Server) -> None:
        super().__init__(server)
        self.limits = Limits.from_settings()

    def protocol(self) -> Any:  # type: ignore[override]  # what http.HTTPFactory builds each connection with
        return http._GenericHTTPChannelProtocol(BoundedChannel(self.limits))

    def buildProtocol(self, addr: Any) -> Any:
        protocol = super().buildProtocol(addr)  # Daphne's: sets its own request class...
        protocol.requestFactory = BoundedRequest  # ...which this one extends
        return protocol


class BoundedServer(Server):
    """Daphne's server with `BoundedHTTPFactory`. Daphne's `run` builds its factory inline
    (`self.http_factory = HTTPFactory(self)`); this property puts the bounded one in its place."""

    @property
    def http_factory(self) -> HTTPFactory:
        return self._http_factory

    @http_factory.setter
    def http_factory(self, factory: HTTPFactory) -> None:
        self._http_factory = factory if isinstance(factory, BoundedHTTPFactory) else BoundedHTTPFactory(self)


class BoundedCommandLine(CommandLineInterface):
    server_class = BoundedServer


def main(argv: list[str] | None = None) -> None:
    """`python -m chatsite.server [daphne options] chatsite.asgi:application`."""
    from assistant_chat.embedders.offline import warm_in_background

    warm_in_background()  # the built-in embedder loads while Daphne starts, not during the first question
    BoundedCommandLine().run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
