"""The coalescer with a fake clock: first text at once, then at most one frame per window, nothing lost."""

from assistant_chat.rooms.coalescer import Coalescer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_first_text_goes_out_at_once_then_one_frame_per_window():
    clock = Clock()
    coalescer = Coalescer(0.04, clock)
    assert coalescer.add("Hello") is True
    assert coalescer.take() == "Hello"
    clock.now += 0.01
    assert coalescer.add(" wor") is False
    assert coalescer.deadline() == 100.04
    clock.now += 0.01
    assert coalescer.add("ld") is False
    clock.now = 100.04
    assert coalescer.add("") is True  # due: the timer's call
    assert coalescer.take() == " world"
    assert coalescer.take() == ""  # nothing waits
    assert coalescer.deadline() is None


def test_a_slow_stream_gets_every_token_at_once():
    clock = Clock()
    coalescer = Coalescer(0.04, clock)
    frames = []
    for token in ["a ", "b ", "c "]:
        clock.now += 0.1
        assert coalescer.add(token) is True
        frames.append(coalescer.take())
    assert frames == ["a ", "b ", "c "]


def test_a_fast_stream_is_joined_in_order_and_nothing_is_lost():
    clock = Clock()
    coalescer = Coalescer(0.04, clock)
    out = []
    tokens = [f"t{i} " for i in range(1000)]
    for token in tokens:
        clock.now += 0.001  # 1,000 tokens per second
        if coalescer.add(token):
            out.append(coalescer.take())
    out.append(coalescer.take())
    assert "".join(out) == "".join(tokens)
    assert 20 <= len(out) <= 30  # ~one frame per 40 ms over one second
