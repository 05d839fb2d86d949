"""Citation markers split across deltas, and what is not a marker."""

from __future__ import annotations

import pytest

from assistant_chat.citations import Marker, MarkerParser, Text

ANSWER = "Falcons are hooded [1]. They moult in summer [2, 3]. Prices [^4] vary; see [2, pp. 7]. A list [a] and [ ]."


def run(pieces: list[str]) -> list:
    parser = MarkerParser()
    out = []
    for piece in pieces:
        out += parser.feed(piece)
    out += parser.close()
    merged: list = []
    for item in out:  # text may arrive in more pieces than needed; compare merged
        if merged and isinstance(item, Text) and isinstance(merged[-1], Text):
            merged[-1] = Text(merged[-1].text + item.text)
        else:
            merged.append(item)
    return merged


EXPECTED = [
    Text("Falcons are hooded "),
    Marker((1,), "[1]"),
    Text(". They moult in summer "),
    Marker((2, 3), "[2, 3]"),
    Text(". Prices "),
    Marker((4,), "[^4]"),
    Text(" vary; see "),
    Marker((2,), "[2, pp. 7]"),
    Text(". A list [a] and [ ]."),
]


def test_whole_text() -> None:
    assert run([ANSWER]) == EXPECTED


@pytest.mark.parametrize("cut", range(1, len(ANSWER)))
def test_split_anywhere(cut: int) -> None:
    assert run([ANSWER[:cut], ANSWER[cut:]]) == EXPECTED


def test_one_character_at_a_time() -> None:
    assert run(list(ANSWER)) == EXPECTED


def test_unclosed_bracket_is_released_at_the_end() -> None:
    assert run(["see [12"]) == [Text("see [12")]


def test_long_bracket_text_is_not_held() -> None:
    parser = MarkerParser()
    out = parser.feed("[" + "1," * 40)
    assert out and isinstance(out[0], Text) and out[0].text.startswith("[")
