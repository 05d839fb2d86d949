"""Citation markers in a streamed answer: `[1]`, `[1, 3]`, `[^2]`, `[2, pp. 4]` become structured citations.

Used by `turns` on every delta. A marker may arrive split across deltas, so text from a `[` is held back until the
bracket closes or it is clearly not a marker; everything else passes through at once, so holding back never
delays more than one short marker. Pure: no Django, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_MARKER = 32
_MARKER = re.compile(r"\[\^?\s*(\d{1,3}(?:\s*,\s*\d{1,3})*)(?:\s*,\s*pp?\.\s*[\d,\s-]+)?\s*\]")
_PREFIX = re.compile(r"\[\^?[\d\s,p.\-]*")


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Marker:
    numbers: tuple[int, ...]
    raw: str


Piece = Text | Marker


class MarkerParser:
    """Feed text as it streams; get back text and markers in order."""

    def __init__(self) -> None:
        self._held = ""

    def feed(self, text: str) -> list[Piece]:
        buffer = self._held + text
        self._held = ""
        out: list[Piece] = []
        position = 0
        while True:
            start = buffer.find("[", position)
            if start == -1:
                _emit(out, buffer[position:])
                return out
            _emit(out, buffer[position:start])
            match = _MARKER.match(buffer, start)
            if match:
                numbers = tuple(int(n) for n in re.findall(r"\d+", match.group(1)))
                out.append(Marker(numbers, match.group(0)))
                position = match.end()
                continue
            tail = buffer[start:]
            prefix = _PREFIX.match(tail)
            if prefix and prefix.end() == len(tail) and len(tail) < MAX_MARKER:
                self._held = tail  # could still become a marker: wait for more text
                return out
            _emit(out, "[")
            position = start + 1

    def close(self) -> list[Piece]:
        held, self._held = self._held, ""
        return [Text(held)] if held else []


def _emit(out: list[Piece], text: str) -> None:
    if not text:
        return
    if out and isinstance(out[-1], Text):
        out[-1] = Text(out[-1].text + text)
    else:
        out.append(Text(text))
