"""A real HTTP server on 127.0.0.1, in a thread, that answers embedding requests in a provider's documented wire
format (scripted per test) and records every request: the embedders are synchronous, so the server must not share
their thread."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Server:
    url: str
    requests: list[Seen] = field(default_factory=list)


# A handler gets the request and returns (status, JSON body).
Answer = Callable[[Seen], tuple[int, Any]]


@contextmanager
def serve(answer: Answer) -> Iterator[Server]:
    server_state: Server

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length)
            seen = Seen(self.path, {k.lower(): v for k, v in self.headers.items()}, json.loads(raw or b"null"))
            server_state.requests.append(seen)
            status, body = answer(seen)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server_state = Server(url=f"http://127.0.0.1:{httpd.server_address[1]}")
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server_state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def vector_for(text: str, dims: int) -> list[float]:
    """A deterministic, text-dependent, unnormalised vector (so a test sees rows kept in order and normalised)."""
    seed = sum(text.encode()) + len(text)
    return [float((seed * (i + 3)) % 17 + 1) for i in range(dims)]
