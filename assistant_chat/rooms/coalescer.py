"""When a turn's pending tokens become one websocket frame. Pure: no asyncio, no Django, an injectable clock.

The first text of a turn goes out at once (time to first token is what members feel); after that, text that
arrives within `window` seconds of the last frame waits and goes out together, so a 1,000-member room gets ~25
frames a second rather than one per token. Used by `turn_runner`.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Coalescer:
    def __init__(self, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        self.pending: list[str] = []
        self.last_frame: float | None = None

    def add(self, text: str) -> bool:
        """Queue `text`; True when a frame should go out now, False when it should wait until `deadline()`."""
        if text:
            self.pending.append(text)
        return bool(self.pending) and (self.last_frame is None or self.clock() - self.last_frame >= self.window)

    def deadline(self) -> float | None:
        """The clock time at which waiting text is due (None when nothing waits)."""
        if not self.pending:
            return None
        return self.clock() if self.last_frame is None else self.last_frame + self.window

    def take(self) -> str:
        """The waiting text as one frame's worth ("" when nothing waits); starts a new window."""
        if not self.pending:
            return ""
        text = "".join(self.pending)
        self.pending.clear()
        self.last_frame = self.clock()
        return text
