"""The built-in embedder: bundled weights, no network, the interface the offline chat model builds on."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from assistant_chat.embedders.offline import OfflineEmbedder


def test_rows_are_normalised_float32_of_256_dimensions() -> None:
    embedder = OfflineEmbedder()
    assert embedder.model == "offline" and embedder.dimensions == 256
    matrix = embedder.embed(["Pets are not permitted on company premises.", "The quarterly revenue grew 5%."])
    assert matrix.shape == (2, 256) and matrix.dtype == np.float32
    assert np.allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)


def test_empty_input_and_empty_text() -> None:
    embedder = OfflineEmbedder()
    assert embedder.embed([]).shape == (0, 256)
    empty = embedder.embed([""])
    assert empty.shape == (1, 256) and not np.isnan(empty).any()


def test_same_text_same_vector_whatever_its_batch() -> None:
    embedder = OfflineEmbedder()
    alone = embedder.embed(["Bees dance to show where flowers are."])[0]
    batched = embedder.embed(["A much longer neighbour " * 50, "Bees dance to show where flowers are."])[1]
    assert np.allclose(alone, batched, atol=1e-5)
    assert np.allclose(embedder.embed_query("Bees dance to show where flowers are."), alone, atol=1e-5)


def test_meaning_is_closer_than_unrelated_text() -> None:
    embedder = OfflineEmbedder()
    question, policy, other = embedder.embed(
        ["Can I bring my dog to the office?", "Pets are not permitted on company premises.", "Volcanoes erupt lava."]
    )
    assert question @ policy > question @ other


def test_loads_with_the_network_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant_chat.embedders import offline

    def refuse(*args, **kwargs):
        raise AssertionError("the offline embedder tried to open a network connection")

    monkeypatch.setattr(offline, "_model", None)  # force a fresh load from the package folder
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    assert OfflineEmbedder().embed(["otters"]).shape == (1, 256)


def test_warming_loads_the_model_in_a_background_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant_chat.embedders import offline

    monkeypatch.setattr(offline, "_model", None)
    thread = offline.warm_in_background()
    assert thread.daemon  # never keeps a stopping server alive
    thread.join(60)
    assert offline._model is not None
    assert OfflineEmbedder().embed(["otters"]).shape == (1, 256)


def test_the_server_warms_the_embedder_as_it_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant_chat.embedders import offline
    from chatsite import server

    calls: list[str] = []
    monkeypatch.setattr(offline, "warm_in_background", lambda: calls.append("warm"))
    monkeypatch.setattr(server.BoundedCommandLine, "run", lambda self, args: calls.append("run"))
    server.main(["chatsite.asgi:application"])
    assert calls == ["warm", "run"]


def test_runs_of_sentences_equal_embedding_each_run_apart() -> None:
    from assistant_chat.embedders.base import Embedder, runs

    embedder = OfflineEmbedder()
    pieces = [
        ["Pets are not permitted on company premises.", "Guide animals are welcome.", "Ask reception first."],
        ["Only one sentence here."],
        [],
        ["", "A piece after an empty one."],
    ]
    fast = embedder.embed_runs(pieces, longest=2)
    apart = Embedder.embed_runs(embedder, pieces, longest=2)  # the contract's plain version: embed each run
    assert [m.shape for m in fast] == [(5, 256), (1, 256), (0, 256), (3, 256)]
    for mine, theirs in zip(fast, apart, strict=True):
        assert np.allclose(mine, theirs, atol=1e-5)
    assert runs(["a", "b", "c"], 3) == ["a", "b", "c", "a b", "b c", "a b c"]


def test_sentence_runs_stay_right_when_the_word_vector_cache_fills(monkeypatch):
    """The per-word sums are emptied when full (mid-batch too): every vector is still the runs' own."""
    from assistant_chat.embedders import offline
    from assistant_chat.embedders.base import Embedder

    monkeypatch.setattr(offline, "WORD_VECTORS_MAX", 6)
    monkeypatch.setattr(offline, "_word_rows", {})
    embedder = OfflineEmbedder()
    batches = [
        [["Sea otters crack shellfish.", "They float."]],
        [["They float.", "Honeybees dance to say where flowers are."]],  # two words cached, the rest not
        [["They float."]],
    ]
    largest = 0
    for pieces in batches * 2:
        for mine, theirs in zip(embedder.embed_runs(pieces), Embedder.embed_runs(embedder, pieces), strict=True):
            assert np.allclose(mine, theirs, atol=1e-5)
        words = {word for texts in pieces for piece in texts for word in piece.split()}
        largest = max(largest, len(words))
        # Past the bound only by one batch's own words: emptied, never kept growing.
        assert words <= set(offline._word_rows) and len(offline._word_rows) <= max(6, largest)
