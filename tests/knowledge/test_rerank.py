"""The second ranking stage: best sentence by meaning, and the question's own words leading (knowledge/rerank.py)."""

from __future__ import annotations

import numpy as np
import pytest

from assistant_chat import services
from assistant_chat.embedders.base import Embedder
from assistant_chat.embedders.offline import OfflineEmbedder
from assistant_chat.knowledge import hybrid, rerank, word_table
from assistant_chat.knowledge.search import Hit
from assistant_chat.models import File


def hit(chunk_id: int, text: str, score: float = 0.5) -> Hit:
    return Hit(chunk_id, 1, chunk_id, text, [], score)


def test_sentences_are_split_at_stops_and_lines() -> None:
    pieces = rerank.sentences("First sentence is here. Second one follows now!\n- a list item of words\nOk.")
    assert pieces == ["First sentence is here.", "Second one follows now!", "- a list item of words"]  # "Ok." is
    # too short to mean anything alone; pairs of adjacent sentences are embedded too (Embedder.embed_runs)
    assert rerank.sentences("Hi.") == ["Hi."]  # nothing long enough: the text itself


def test_coverage_counts_the_questions_terms_by_their_stem() -> None:
    assert rerank.coverage("How many locks form the Wyndham flight?", "The Wyndham flight of locks") == 0.6  # 3 of 5
    assert rerank.coverage("Can I bring my dog?", "Pets are not permitted") == 0.0
    assert rerank.coverage("parking permits", "A permit for parking") == 1.0  # permits/permit share a stem
    assert rerank.coverage("the and of", "") == 0.0


def test_lexical_lead_moves_the_first_word_match_up_only_when_it_holds_the_words() -> None:
    lexical = [hit(7, "The Wyndham flight has sixteen locks.")]
    fused = [hit(3, "Canals of the north."), hit(7, lexical[0].text), hit(5, "Boats.")]
    led = rerank.lexical_lead("How many locks form the Wyndham flight?", lexical, fused)
    assert [h.chunk_id for h in led] == [7, 3, 5]
    kept = rerank.lexical_lead("Which waterway climbs the hill?", lexical, fused)  # shares too few words
    assert [h.chunk_id for h in kept] == [3, 7, 5]
    assert rerank.lexical_lead("locks", [], fused) == fused
    # Cut off by the limit, the lexical hit still leads, and the list keeps its length.
    led = rerank.lexical_lead("Wyndham locks", lexical, [hit(3, "x"), hit(5, "y")])
    assert [h.chunk_id for h in led] == [7, 3]


def test_best_sentence_lifts_a_chunk_whose_one_sentence_answers() -> None:
    embedder = OfflineEmbedder()
    query = embedder.embed_query("Can I bring my dog to the office?")
    filler = "The canteen serves lunch from noon. Desks are cleaned every evening. " * 6
    answer = filler + "Pets are not permitted on company premises. " + filler
    hits = [hit(i, f"Quarterly revenue table {i}. Revenue rose in the third quarter.") for i in range(4)]
    hits.append(hit(9, answer))
    ranked = rerank.by_meaning(embedder, query, hits)
    assert [h.chunk_id for h in ranked].index(9) < 4
    assert sorted(h.chunk_id for h in ranked) == sorted(h.chunk_id for h in hits)  # nothing lost or added


def test_only_the_first_depth_are_reranked_and_sentence_vectors_are_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    class Counting(Embedder):
        model, dimensions, local = "counting", 2, True

        def embed(self, texts: list[str]) -> np.ndarray:
            calls.append(len(texts))
            return np.tile(np.array([[1.0, 0.0]], dtype=np.float32), (len(texts), 1))

    hits = [hit(100 + i, f"Sentence number {i} is here.") for i in range(rerank.DEPTH + 5)]
    ranked = rerank.by_meaning(Counting(), np.array([1.0, 0.0], dtype=np.float32), hits)
    assert ranked[rerank.DEPTH :] == hits[rerank.DEPTH :]  # the tail keeps its order
    assert ranked[: rerank.DEPTH] == hits[: rerank.DEPTH]  # equal similarities: the fused order decides
    assert calls == [rerank.DEPTH]
    rerank.by_meaning(Counting(), np.array([1.0, 0.0], dtype=np.float32), hits)
    assert calls == [rerank.DEPTH]  # the second search embeds nothing


def test_word_match_scores_the_nearest_word_by_meaning_and_the_word_itself_fully() -> None:
    embedder = OfflineEmbedder()
    pets = hit(1, "Pets are not permitted on company premises.")
    revenue = hit(2, "Quarterly revenue rose in the third quarter.")
    empty = hit(3, "The and of it.")  # stopwords only: nothing to match
    dog, money, nothing = rerank.word_match(embedder, ["dog", "office"], [pets, revenue, empty])
    assert dog > money  # "dog" is nearer "pets" than any word of the revenue chunk
    assert nothing == 0.0
    assert rerank.word_match(embedder, ["premises"], [pets])[0] == pytest.approx(1.0, abs=1e-5)
    assert rerank.word_match(embedder, ["dog"], []) == []
    assert rerank.word_match(embedder, [], [pets]) == [0.0]


def test_content_words_are_lower_cased_distinct_and_without_stopwords() -> None:
    assert sorted(word_table.content_words("The Dog and the dog's DOG bowl.")) == ["bowl", "dog", "s"]
    # Split as the word search splits (search.WORD): at any character that is not a letter or digit, in any script.
    assert sorted(word_table.content_words("Café–bar «Zürich» e-mail_list 3×4 naïve")) == sorted(
        ["café", "bar", "zürich", "e", "mail", "list", "3", "4", "naïve"]
    )


def test_word_match_lifts_a_chunk_whose_words_mean_the_questions_terms() -> None:
    class SameSentences(OfflineEmbedder):  # every sentence alike: only the word ranking can move a chunk
        def embed_runs(self, texts: list[list[str]], longest: int = 2) -> list[np.ndarray]:
            return [np.ones((1, self.dimensions), dtype=np.float32) / 16.0 for _ in texts]

    embedder = SameSentences()
    query = embedder.embed_query("My phone got nicked on holiday, how much will they pay?")
    hits = [hit(i + 50, f"The canteen serves lunch from noon. Coffee number {i} is free.") for i in range(5)]
    hits.append(hit(59, "Theft of a mobile device while abroad is reimbursed up to 300 pounds."))
    plain = [h.chunk_id for h in rerank.by_meaning(embedder, query, hits)]
    assert plain == [h.chunk_id for h in hits]  # sentences tie: the fused order stands
    terms = ["phone", "nicked", "holiday", "pay"]
    scores = rerank.word_match(embedder, terms, hits)
    assert scores[-1] == max(scores)
    with_words = [h.chunk_id for h in rerank.by_meaning(embedder, query, hits, terms=terms)]
    assert with_words.index(59) < plain.index(59)
    assert sorted(with_words) == sorted(plain)  # nothing lost or added


def test_prepare_caches_the_words_and_the_base_embedder_embeds_single_words() -> None:
    embedder = OfflineEmbedder()
    chunk = hit(4242, "Refunds reach the card within five working days.")
    rerank.prepare(embedder, [chunk])
    table, rows = word_table._chunks[(4242, chunk.text)]
    words = {"refunds", "reach", "card", "within", "five", "working", "days"}
    assert sorted(rows.tolist()) == sorted(table.rows[word] for word in words)

    class Plain(Embedder):
        model, dimensions, local = "plain", 2, True

        def embed(self, texts: list[str]) -> np.ndarray:
            return np.array([[float(len(t)), 1.0] for t in texts], dtype=np.float32)

    assert Plain().embed_words(["ab", "c"]).tolist() == [[2.0, 1.0], [1.0, 1.0]]
    vectors = embedder.embed_words(["refunds", "days"])
    assert vectors.shape == (2, 256)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vectors, embedder.embed(["refunds", "days"]), atol=1e-5)  # the fast path is `embed`'s


@pytest.mark.django_db(transaction=True)
def test_hybrid_search_keeps_scores_falling_after_reranking() -> None:
    assistant = services.assistant_create(name="handbook")
    for name, text in [
        ("pets.txt", "Pets are not permitted on company premises. Guide animals are the only exception."),
        ("parking.txt", "Staff may park in the north lot after obtaining a permit from reception."),
        ("canteen.txt", "The canteen serves lunch from noon, and coffee all day long."),
    ]:
        status = services.file_upload(assistant=assistant, name=name, data=text.encode())[2].result(timeout=30)
        assert status == File.Status.AVAILABLE
    hits = hybrid.search(assistant=assistant, query="Can I bring my dog to work?")
    assert File.objects.get(pk=hits[0].file_pk).name == "pets.txt"
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    words = hybrid.search(assistant=assistant, query="north lot permit reception")
    assert File.objects.get(pk=words[0].file_pk).name == "parking.txt"


@pytest.mark.django_db(transaction=True)
def test_rerank_depth_zero_turns_sentence_ranking_off(settings, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    assistant = services.assistant_create(name="off")
    services.file_upload(assistant=assistant, name="a.txt", data=b"Pets are not permitted on premises.")[2].result(30)
    calls: list[int] = []
    monkeypatch.setattr(rerank, "by_meaning", lambda embedder, query, hits, depth, terms: calls.append(depth) or hits)
    settings.SEARCH_RERANK_DEPTH = 0
    assert hybrid.search(assistant=assistant, query="Can I bring my dog?")
    assert calls == []
    settings.SEARCH_RERANK_DEPTH = 7
    hybrid.search(assistant=assistant, query="Can I bring my cat?")
    assert calls == [7]
