"""The SSE decoder: output independent of how the byte stream is cut, and the line-ending and UTF-8 edge cases."""

from __future__ import annotations

import json

import pytest

from assistant_chat.providers.sse import SSEDecoder, SSEEvent, aiter_events
from tests.providers.fixtures import ALL


def decode(*chunks: bytes) -> tuple[list[SSEEvent], list[str]]:
    decoder = SSEDecoder()
    events = [event for chunk in chunks for event in decoder.feed(chunk)]
    return events + decoder.close(), decoder.stray_lines


@pytest.mark.parametrize("name", sorted(ALL))
def test_every_split_gives_the_same_events(name: str) -> None:
    data = ALL[name]
    expected = decode(data)
    assert expected[0], "every fixture has events"
    for offset in range(len(data) + 1):
        assert decode(data[:offset], data[offset:]) == expected, f"split at {offset}"
    assert decode(*(data[i : i + 1] for i in range(len(data)))) == expected
    for size in (2, 3, 5, 7, 64):
        assert decode(*(data[i : i + size] for i in range(0, len(data), size))) == expected


def test_openai_fixture_decodes_to_json_events_and_done() -> None:
    events, stray = decode(ALL["OPENAI_STREAM"])
    assert [event for event, _ in events] == [None] * 6
    assert events[-1][1] == "[DONE]"
    assert json.loads(events[2][1])["choices"][0]["delta"]["content"] == " — héllo!"
    assert stray == []


def test_anthropic_fixture_keeps_event_names() -> None:
    events, _ = decode(ALL["ANTHROPIC_STREAM"])
    assert [event for event, _ in events] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(json.loads(data)["type"] == event for event, data in events)


def test_gemini_unframed_error_goes_to_stray_lines() -> None:
    events, stray = decode(ALL["GEMINI_MIDSTREAM_ERROR"])
    assert len(events) == 1
    assert json.loads("\n".join(stray))["error"]["code"] == 503


def test_pinecone_data_without_space() -> None:
    events, _ = decode(ALL["PINECONE_CC_STREAM"])
    assert len(events) == 3
    assert json.loads(events[1][1])["choices"][0]["delta"]["content"] == "The sky is blue [1, pp. 1]."


def test_crlf_split_across_reads_is_one_line_end() -> None:
    # "\r" ends one read, "\n" starts the next: one line break, so one event and no spurious empty dispatch.
    assert decode(b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n") == ([(None, "a"), (None, "b")], [])


@pytest.mark.parametrize(
    "data",
    [
        b"data: x\n\n",
        b"data: x\r\n\r\n",
        b"data: x\r\rdata: y\r\r",
        b"data: x\r\n\ndata: y\n\r\n",
        b"data: x\n\rdata: y\n\n",
    ],
)
def test_line_endings(data: bytes) -> None:
    events, _ = decode(data)
    assert [d for _, d in events] == (["x", "y"] if b"y" in data else ["x"])


def test_lone_cr_then_lf_in_the_same_read_is_crlf() -> None:
    assert decode(b"data: a\r\n", b"\r", b"\n") == ([(None, "a")], [])


def test_bom_is_stripped_even_when_split() -> None:
    data = b"\xef\xbb\xbfdata: a\n\n"
    for offset in range(len(data) + 1):
        assert decode(data[:offset], data[offset:]) == ([(None, "a")], [])
    assert decode(*(data[i : i + 1] for i in range(len(data)))) == ([(None, "a")], [])


def test_only_a_leading_bom_is_stripped() -> None:
    events, _ = decode(b"data: \xef\xbb\xbfa\n\n")
    assert events == [(None, "\ufeffa")]


def test_comments_and_keepalives_are_skipped() -> None:
    assert decode(b": ping\n:\n: keep-alive\n\ndata: a\n\n") == ([(None, "a")], [])


def test_multiline_data_is_joined_with_newlines() -> None:
    events, _ = decode(b'data: {"a":\ndata: 1}\n\n')
    assert events == [(None, '{"a":\n1}')]
    assert json.loads(events[0][1]) == {"a": 1}


def test_one_optional_space_is_removed() -> None:
    assert decode(b"data:x\n\ndata:  y\n\ndata:[DONE]\n\n")[0] == [(None, "x"), (None, " y"), (None, "[DONE]")]


def test_event_without_data_dispatches_empty_data() -> None:
    assert decode(b"event: ping\n\n")[0] == [("ping", "")]


def test_id_and_retry_are_ignored_other_fields_are_stray() -> None:
    events, stray = decode(b'id: 7\nretry: 100\nerror: {"code":500}\ndata: a\n\n')
    assert events == [(None, "a")]
    assert stray == ['error: {"code":500}']


def test_u2028_inside_json_stays_in_its_line() -> None:
    payload = '{"t":"a\u2028b\u2029c\x85d"}'
    data = b"data: " + payload.encode() + b"\n\n"
    for offset in range(len(data) + 1):
        events, _ = decode(data[:offset], data[offset:])
        assert events == [(None, payload)]
        assert json.loads(events[0][1])["t"] == "a\u2028b\u2029c\x85d"


def test_multibyte_characters_split_anywhere() -> None:
    data = "data: é — 😀\n\n".encode()
    assert decode(*(data[i : i + 1] for i in range(len(data))))[0] == [(None, "é — 😀")]


def test_unterminated_last_event_is_dispatched_at_close() -> None:
    assert decode(b"data: a\n\ndata: [DONE]")[0] == [(None, "a"), (None, "[DONE]")]
    assert decode(b"data: a\n\ndata: [DONE]\n")[0] == [(None, "a"), (None, "[DONE]")]


def test_close_on_empty_stream() -> None:
    assert decode() == ([], [])
    assert decode(b"") == ([], [])


def test_invalid_utf8_raises() -> None:
    with pytest.raises(UnicodeDecodeError):
        decode(b"data: \xff\n\n")


class _FakeResponse:
    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks

    async def aiter_bytes(self):  # type: ignore[no-untyped-def]
        for chunk in self.chunks:
            yield chunk


async def test_aiter_events_flushes_at_eof_and_exposes_stray_lines() -> None:
    decoder = SSEDecoder()
    response = _FakeResponse(b"data: a\n", b"\nda", b"ta: b\n{\n")
    assert [event async for event in aiter_events(response, decoder)] == [(None, "a"), (None, "b")]
    assert decoder.stray_lines == ["{"]
