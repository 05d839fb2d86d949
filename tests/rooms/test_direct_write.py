"""The fan-out's direct write path (`fanout._ws_text_frame`, `fanout._DirectWriter`): frames of every length class
decode as RFC 6455 says (checked with the `websockets` library's own parser), and bytes are never reordered or
lost when the kernel takes only part of them or Twisted already has something queued."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from assistant_chat.rooms.fanout import _DirectWriter, _ws_text_frame


def parse(data: bytes) -> tuple[Frame, bytes]:
    reader = StreamReader()
    reader.feed_data(data)
    parser = Frame.parse(reader.read_exact, mask=False, max_size=None)
    try:
        next(parser)
    except StopIteration as done:
        frame = done.value
    else:
        raise AssertionError("incomplete frame")
    rest = bytes(reader.buffer)
    return frame, rest


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65535, 65536, 200_000])
def test_frames_of_every_length_class_decode(length: int) -> None:
    text = ("é" if length % 2 else "a") * (length // (2 if length % 2 else 1))
    wire = _ws_text_frame(text)
    frame, rest = parse(wire + b"\x81\x00")  # a following frame must start exactly where this one ends
    assert frame.opcode == Opcode.TEXT and frame.fin and frame.data.decode() == text and rest == b"\x81\x00"


@dataclass
class Transport:
    """Twisted's TCP transport, as far as the writer uses it."""

    accept: int | None = None  # bytes the kernel takes per writeSomeData; None: everything
    connected: bool = True
    disconnecting: bool = False
    _tempDataLen: int = 0
    offset: int = 0
    dataBuffer: bytes = b""
    on_wire: bytearray = field(default_factory=bytearray)
    queued: bytearray = field(default_factory=bytearray)

    def writeSomeData(self, data: bytes) -> int:
        taken = len(data) if self.accept is None else min(self.accept, len(data))
        self.on_wire += data[:taken]
        return taken

    def write(self, data: bytes) -> None:  # Twisted's buffer: written later, in order
        self.queued += data
        self._tempDataLen += len(data)


class Protocol:
    STATE_OPEN = 1

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.state = self.STATE_OPEN


def test_what_the_kernel_does_not_take_joins_the_buffer_in_order() -> None:
    transport = Transport(accept=65536)
    writer = _DirectWriter(Protocol(transport))
    big, small = _ws_text_frame("x" * 150_000), _ws_text_frame("after")
    writer.write(big)
    writer.write(small)  # Twisted holds the rest of `big` now: this must queue behind it, not go to the socket
    assert bytes(transport.on_wire) == big[:65536]
    assert bytes(transport.on_wire + transport.queued) == big + small
    first, rest = parse(bytes(transport.on_wire + transport.queued))
    assert first.data.decode() == "x" * 150_000 and parse(rest)[0].data == b"after"


def test_a_frame_queued_the_ordinary_way_is_not_overtaken() -> None:
    transport = Transport()
    transport.write(b"\x89\x00")  # e.g. a ping Daphne queued and has not written yet
    writer = _DirectWriter(Protocol(transport))
    writer.write(_ws_text_frame("delta"))
    assert transport.on_wire == b"" and bytes(transport.queued) == b"\x89\x00" + _ws_text_frame("delta")


def test_nothing_is_written_to_a_closing_socket() -> None:
    for change in ({"connected": False}, {"disconnecting": True}):
        transport = Transport(**change)  # type: ignore[arg-type]
        _DirectWriter(Protocol(transport)).write(_ws_text_frame("late"))
        assert transport.on_wire == b"" and transport.queued == b""
    transport = Transport()
    protocol = Protocol(transport)
    protocol.state = 2  # the closing handshake has started
    _DirectWriter(protocol).write(_ws_text_frame("late"))
    assert transport.on_wire == b"" and transport.queued == b""


def test_a_connection_lost_mid_write_is_left_to_twisted() -> None:
    class Broken(Transport):
        def writeSomeData(self, data: bytes) -> int:
            return ConnectionResetError()  # type: ignore[return-value]  # what Twisted returns, not raises

    transport = Broken()
    _DirectWriter(Protocol(transport)).write(_ws_text_frame("gone"))
    assert transport.queued == b""
