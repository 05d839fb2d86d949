"""One incremental text/event-stream decoder, shared by every upstream provider.

Called only by the providers (and so only by the turn engine); imports no Django and nothing outside this package.
Bytes go in, `(event, data)` tuples come out, and the output never depends on where the network cut the stream.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Protocol

SSEEvent = tuple[str | None, str]

_EOL = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"


class SSEDecoder:
    """Feed raw bytes with `feed`, call `close` once at EOF.

    Lines are split on bytes (CRLF, LF or lone CR) before UTF-8 decoding, so a character cut between two reads is
    reassembled and a raw U+2028 inside JSON stays inside its line (unlike `str.splitlines`). Lines that are not SSE
    fields (Gemini's unframed JSON error body, llama.cpp's old `error:` field) are kept in `stray_lines`.
    An invalid UTF-8 line raises `UnicodeDecodeError`.
    """

    def __init__(self) -> None:
        self._buf = b""
        self._head: bytes | None = b""  # bytes seen while a leading BOM may still be arriving; None once decided
        self._skip_lf = False  # the previous read ended in CR: a leading LF is its partner, not a second line end
        self._event: str | None = None
        self._data: list[str] = []
        self.stray_lines: list[str] = []

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if self._head is not None:
            head = self._head + chunk
            if len(head) < len(_BOM) and _BOM.startswith(head):
                self._head = head
                return []
            self._head = None
            chunk = head.removeprefix(_BOM)
        if not chunk:
            return []
        if self._skip_lf and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._skip_lf = False
        buf = self._buf + chunk
        out: list[SSEEvent] = []
        pos = 0
        for match in _EOL.finditer(buf):
            self._line(buf[pos : match.start()].decode("utf-8"), out)
            pos = match.end()
            # A CR that ends the buffer may be the first half of a CRLF split across reads.
            self._skip_lf = match.group() == b"\r" and pos == len(buf)
        self._buf = buf[pos:]
        return out

    def close(self) -> list[SSEEvent]:
        """At EOF: dispatch an unterminated last event (a strict SSE parser would drop it; we must not)."""
        out: list[SSEEvent] = []
        if self._buf:
            line, self._buf = self._buf, b""
            self._line(line.decode("utf-8"), out)
        self._line("", out)
        return out

    def _line(self, line: str, out: list[SSEEvent]) -> None:
        if line == "":
            if self._data or self._event is not None:
                out.append((self._event, "\n".join(self._data)))
            self._event, self._data = None, []
            return
        if line.startswith(":"):  # comment / keep-alive
            return
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")  # exactly one optional space
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name not in ("id", "retry"):  # useless for POST streams: they cannot be resumed
            self.stray_lines.append(line)


class _ByteStream(Protocol):
    def aiter_bytes(self) -> AsyncIterator[bytes]: ...


async def aiter_events(response: _ByteStream, decoder: SSEDecoder | None = None) -> AsyncGenerator[SSEEvent, None]:
    """Every event of an httpx streaming response, including the one `close()` flushes at EOF.

    Pass your own `decoder` to read its `stray_lines` afterwards. Wrap in `contextlib.aclosing` when you may stop
    early, so the generator is finalised at once rather than by the garbage collector.
    """
    decoder = decoder or SSEDecoder()
    async for chunk in response.aiter_bytes():  # decoded content-encoding; never iter_lines (see the decoder)
        for event in decoder.feed(chunk):
            yield event
    for event in decoder.close():
        yield event
