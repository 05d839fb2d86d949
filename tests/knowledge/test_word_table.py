"""The per-process table of word vectors behind the word ranking (knowledge/word_table.py)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from assistant_chat.embedders.base import Embedder
from assistant_chat.embedders.offline import OfflineEmbedder
from assistant_chat.knowledge import rerank, word_table
from assistant_chat.knowledge.search import Hit

TEXTS = [
    "Pets are not permitted on company premises. Guide animals are the only exception.",
    "Theft of a mobile device while abroad is reimbursed up to 300 pounds.",
    "The canteen serves lunch from noon, and coffee all day long.",
    "The and of it.",  # no content words
]


def hits(base: int) -> list[Hit]:
    return [Hit(base + i, 1, i, text, [], 0.5) for i, text in enumerate(TEXTS)]


def direct(embedder: Embedder, terms: list[str], text: str) -> float:
    """The word match computed from scratch, in float32."""
    words = word_table.content_words(text)
    if not words:
        return 0.0
    return float((embedder.embed_words(terms) @ embedder.embed_words(words).T).max(axis=1).mean())


class Counting(OfflineEmbedder):
    def __init__(self) -> None:
        self.calls: list[int] = []

    def embed_words(self, words: list[str]) -> np.ndarray:
        self.calls.append(len(words))
        return super().embed_words(words)


@pytest.fixture(autouse=True)
def fresh_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(word_table, "_table", None)
    monkeypatch.setattr(word_table, "_chunks", word_table.OrderedDict())


def test_scores_match_a_direct_computation_and_chunks_are_embedded_once() -> None:
    embedder = Counting()
    terms = ["dog", "phone", "stolen"]
    scores = rerank.word_match(embedder, terms, hits(100))
    assert scores == pytest.approx([direct(embedder, terms, text) for text in TEXTS], abs=1e-5)
    assert scores[3] == 0.0
    embedder.calls.clear()
    assert rerank.word_match(embedder, terms, hits(100)) == scores
    assert embedder.calls == [len(terms)]  # only the question's terms: the chunks' rows were kept


def test_a_full_table_starts_afresh_and_scores_stay_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    embedder = OfflineEmbedder()
    terms = ["dog", "lunch"]
    expected = rerank.word_match(embedder, terms, hits(200))
    first = word_table._table
    monkeypatch.setattr(word_table, "WORDS_MAX", len(first.rows) + 3)  # room for 3 more words only
    other = [Hit(300, 1, 0, "Bicycles must be locked in the basement racks overnight.", [], 0.5)]
    rerank.word_match(embedder, terms, other)
    assert word_table._table is not first  # full: a new table, and the old chunks' rows are dropped with it
    assert (200, TEXTS[0]) not in word_table._chunks
    assert rerank.word_match(embedder, terms, hits(200)) == pytest.approx(expected, abs=1e-6)


def test_another_embedder_gets_a_table_of_its_own() -> None:
    class Flat(Embedder):
        model, dimensions, local = "flat", 2, True

        def embed(self, texts: list[str]) -> np.ndarray:
            return np.tile(np.array([[0.6, 0.8]], dtype=np.float32), (len(texts), 1))

    rerank.word_match(OfflineEmbedder(), ["dog"], hits(400))
    scores = rerank.word_match(Flat(), ["dog"], hits(400))
    assert word_table._table.model == "flat"
    assert scores == pytest.approx([1.0, 1.0, 1.0, 0.0], abs=1e-5)  # every word alike in that embedder


def test_concurrent_searches_get_the_scores_one_alone_gets() -> None:
    embedder = OfflineEmbedder()
    terms = ["holiday", "insurance", "coffee"]
    alone = [direct(embedder, terms, text) for text in TEXTS]
    results: list[list[float]] = []
    errors: list[BaseException] = []

    def search(base: int) -> None:
        try:
            for round_ in range(5):
                results.append(rerank.word_match(embedder, terms, hits(base + 10 * round_)))
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=search, args=(1000 * (i + 1),)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(results) == 20
    for scores in results:
        assert scores == pytest.approx(alone, abs=1e-5)


def test_a_table_appends_in_place_and_grows_only_past_its_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(word_table, "WORDS_MAX", 4)
    table = word_table.Table("flat", 2)
    matrix = table.matrix
    table.add(["a", "b", "a"], np.array([[1, 0], [0, 1], [9, 9]], dtype=np.float32))  # a word twice: its first row
    table.add(["b", "c"], np.array([[5, 5], [1, 1]], dtype=np.float32))  # a known word keeps its row
    assert table.matrix is matrix  # nothing copied while it fits: readers' arrays stay the table's
    assert table.rows == {"a": 0, "b": 1, "c": 2}
    assert table.matrix[:3].tolist() == [[1, 0], [0, 1], [1, 1]]
    table.add(["d", "e", "f"], np.eye(3, 2, dtype=np.float32))  # more than it holds: a bigger copy
    assert table.matrix is not matrix and len(table.matrix) >= 6
    assert matrix[:3].tolist() == table.matrix[:3].tolist()  # a reader of the old array still finds its rows
    assert table.rows["f"] == 5 and table.matrix[5].tolist() == [0, 0]
