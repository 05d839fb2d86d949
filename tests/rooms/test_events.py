"""The protocol's allow-list: every bad frame is refused with a reason, good frames pass unchanged."""

import pytest

from assistant_chat.rooms.events import MAX_FRAME_CHARS, FrameError, parse_client_frame


def test_good_frames_pass():
    frame = parse_client_frame('{"type": "message.send", "conversation_id": 3, "content": "hi", "client_id": "a1"}')
    assert frame == {"type": "message.send", "conversation_id": 3, "content": "hi", "client_id": "a1"}
    assert parse_client_frame('{"type": "turn.resume", "message_id": 9, "last_seq": 0}')["last_seq"] == 0
    assert parse_client_frame('{"type": "conversation.create"}') == {"type": "conversation.create"}
    assert parse_client_frame('{"type": "message.regenerate", "message_id": 4}')["message_id"] == 4
    assert parse_client_frame('{"type": "feedback.set", "message_id": 4, "value": "none"}')["value"] == "none"
    frame = parse_client_frame('{"type": "conversation.archive", "conversation_id": 2, "archived": false}')
    assert frame["archived"] is False
    assert parse_client_frame('{"type": "typing.notify", "conversation_id": 2}')["conversation_id"] == 2


@pytest.mark.parametrize(
    "text, fragment",
    [
        (None, "binary"),
        ("x" * (MAX_FRAME_CHARS + 1), "too large"),
        ("{", "not valid JSON"),
        ('"hello"', "JSON object"),
        ("{}", "Unknown frame type"),
        ('{"type": "assistant.delta"}', "Unknown frame type"),  # server events are not client intents
        ('{"type": "turn.cancel"}', "needs 'message_id'"),
        ('{"type": "turn.cancel", "message_id": -1}', "non-negative"),
        ('{"type": "turn.cancel", "message_id": 1.5}', "whole number"),
        ('{"type": "message.send", "conversation_id": 1, "content": 5}', "must be text"),
        ('{"type": "message.send", "conversation_id": 1, "content": "x", "client_id": "' + "c" * 65 + '"}', "64"),
        ('{"type": "feedback.set", "message_id": 1, "value": "meh"}', "'up', 'down' or 'none'"),
        ('{"type": "feedback.set", "message_id": 1}', "needs 'value'"),
        ('{"type": "conversation.archive", "conversation_id": 1, "archived": 1}', "true or false"),
        ('{"type": "message.edit", "message_id": 1}', "needs 'content'"),
        ('{"type": "typing.notify", "conversation_id": 1, "text": "hi"}', "Unknown field"),
        ('{"type": "member.typing", "conversation_id": 1}', "Unknown frame type"),  # a server event
    ],
)
def test_bad_frames_are_refused_with_a_reason(text, fragment):
    with pytest.raises(FrameError) as caught:
        parse_client_frame(text)
    assert fragment in caught.value.message
