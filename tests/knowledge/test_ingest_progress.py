"""Ingestion reports progress while a slow embedder (a provider, the MiniLM one) embeds a large file."""

from __future__ import annotations

import numpy as np
import pytest

from assistant_chat.embedders.base import Embedder
from assistant_chat.knowledge import ingest


class Counting(Embedder):
    model = "counting"
    dimensions = 2

    def __init__(self) -> None:
        self.calls: list[int] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls.append(len(texts))
        return np.array([[float(len(text)), 1.0] for text in texts], dtype=np.float32)


def test_a_large_file_is_embedded_a_slice_at_a_time_with_progress_in_between() -> None:
    texts = [f"chunk {n}" for n in range(600)]
    embedder, reported = Counting(), []
    matrix = ingest._embed_reporting(embedder, texts, reported.append)
    assert embedder.calls == [256, 256, 88]
    assert matrix.shape == (600, 2) and np.array_equal(matrix, Counting().embed(texts))  # in order, nothing lost
    assert reported == sorted(reported) and reported[-1] == pytest.approx(0.95) and 0.8 < reported[0] < 0.9


def test_a_small_file_is_one_call() -> None:
    embedder, reported = Counting(), []
    assert ingest._embed_reporting(embedder, ["one", "two"], reported.append).shape == (2, 2)
    assert embedder.calls == [2] and reported == [pytest.approx(0.95)]
