"""The vector index and hybrid ranking on SQLite (tests/knowledge/test_vectors_postgres.py runs PostgreSQL's)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from assistant_chat import services
from assistant_chat.knowledge import retrieval, vectors
from assistant_chat.knowledge.embedding import query_vector
from assistant_chat.knowledge.filters import parse_filter
from assistant_chat.knowledge.hybrid import search
from assistant_chat.knowledge.vectors import vector_search
from assistant_chat.models import Assistant, Chunk, ChunkVector, Conversation, File, Message, Room

pytestmark = pytest.mark.django_db(transaction=True)

PETS = b"Pets are not permitted on company premises. Guide animals are the only exception."
PARKING = b"Staff may park in the north lot after obtaining a permit from reception."
LUNCH = b"The canteen serves hot meals between noon and two in the afternoon."


def add(assistant: Assistant, name: str, data: bytes, metadata: dict | None = None) -> File:
    file, _op, job = services.file_upload(assistant=assistant, name=name, data=data, metadata=metadata or {})
    assert job.result(timeout=30) == File.Status.AVAILABLE
    return file


@pytest.fixture
def handbook() -> Assistant:
    assistant = services.assistant_create(name="handbook")
    add(assistant, "pets.txt", PETS, {"topic": "office"})
    add(assistant, "parking.txt", PARKING, {"topic": "office"})
    add(assistant, "lunch.txt", LUNCH, {"topic": "food"})
    return assistant


def test_ingestion_stores_one_offline_vector_per_chunk(handbook: Assistant) -> None:
    chunks = Chunk.objects.filter(assistant=handbook).count()
    assert ChunkVector.objects.filter(assistant=handbook, model="offline", dimensions=256).count() == chunks == 3
    handbook.refresh_from_db()
    assert handbook.embedded_with == handbook.embedding_model == "offline"


def test_a_paraphrase_found_by_meaning_where_words_find_nothing(handbook: Assistant) -> None:
    question = "Can I bring my dog to work?"
    assert search(assistant=handbook, query=question, mode="lexical") == []
    hits = search(assistant=handbook, query=question)
    assert File.objects.get(pk=hits[0].file_pk).name == "pets.txt"
    assert 0 < hits[0].score <= 1


def test_words_still_count_in_the_fusion(handbook: Assistant) -> None:
    hits = search(assistant=handbook, query="north lot permit")
    assert File.objects.get(pk=hits[0].file_pk).name == "parking.txt"
    assert hits[0].score == pytest.approx(1.0)  # first by words and by meaning


def test_context_endpoint_uses_the_hybrid_ranking(handbook: Assistant, client: Client) -> None:
    key = services.api_key_create(name="test")[1]
    response = client.post(
        "/assistant/chat/handbook/context",
        json.dumps({"query": "Can I bring my dog to work?"}),
        content_type="application/json",
        HTTP_API_KEY=key,
    )
    assert response.status_code == 200, response.content
    snippets = response.json()["snippets"]
    assert snippets[0]["reference"]["file"]["name"] == "pets.txt"
    assert "Pets are not permitted" in snippets[0]["content"]


def test_chat_turns_get_the_passage_found_by_meaning(handbook: Assistant) -> None:
    from assistant_chat import turns

    prepared = turns.prepare_turn(
        turns.TurnRequest(
            assistant=handbook, messages=[turns.TurnMessage(role="user", content="Can I bring my dog to work?")]
        )
    )
    assert prepared.snippets[0].file.name == "pets.txt"
    assert any("Pets are not permitted" in item.text for item in prepared.request.context)


def test_a_room_turn_retrieves_by_meaning_under_its_filter(handbook: Assistant) -> None:
    from assistant_chat.rooms.turn_runner import _prepare

    user = get_user_model().objects.create_user("ann", password="x")  # noqa: S106
    room = Room.objects.create(
        name="Office", slug="office", assistant=handbook, model="offline", metadata_filter={"topic": "office"}
    )
    conversation = Conversation.objects.create(room=room, title="t", created_by=user)
    Message.objects.create(conversation=conversation, role=Message.Role.USER, author=user, content="Is my dog welcome?")
    answer = Message.objects.create(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        content="",
        model="offline",
        metadata_filter={"topic": "office"},
    )
    prepared = _prepare(answer.pk)
    names = [snippet.file.name for snippet in prepared.snippets]
    assert names[0] == "pets.txt" and "lunch.txt" not in names


def test_a_restrictive_filter_still_returns_k_results() -> None:
    assistant = services.assistant_create(name="many")
    for n in range(12):
        text = " ".join(f"Paragraph {n}.{p} about harbour cranes and tides." for p in range(90))
        add(assistant, f"f{n}.txt", text.encode(), {"n": n})
    target = File.objects.get(assistant=assistant, name="f7.txt")
    in_target = Chunk.objects.filter(file=target).count()
    assert in_target >= 3
    query = query_vector("offline", "lunch menu")  # far from everything: the filter alone decides
    hits = vector_search(assistant_id=assistant.pk, model="offline", query=query, file_pks={target.pk}, limit=3)
    assert len(hits) == 3 and {hit.file_pk for hit in hits} == {target.pk}
    snippets = retrieval.retrieve(
        assistant=assistant, query="cranes by the sea", metadata_filter=parse_filter({"n": 7})
    )
    assert snippets and {snippet.file.name for snippet in snippets} == {"f7.txt"}
    assert vector_search(assistant_id=assistant.pk, model="offline", query=query, file_pks=set(), limit=3) == []


def test_results_follow_deletes_and_new_files(handbook: Assistant) -> None:
    query = query_vector("offline", "Can I bring my dog to work?")
    first = vector_search(assistant_id=handbook.pk, model="offline", query=query, limit=1)
    pets = File.objects.get(assistant=handbook, name="pets.txt")
    assert first[0].file_pk == pets.pk
    services.file_delete(file=pets)
    Chunk.objects.filter(file=pets).delete()  # purged now, whenever the delete job would run
    after = vector_search(assistant_id=handbook.pk, model="offline", query=query, limit=5)
    assert pets.pk not in {hit.file_pk for hit in after}
    dogs = add(handbook, "dogs.txt", b"Dogs and cats must stay at home; animals are not allowed in the building.")
    again = vector_search(assistant_id=handbook.pk, model="offline", query=query, limit=1)
    assert again[0].file_pk == dogs.pk


def test_a_failing_question_embedding_falls_back_to_words(handbook: Assistant, monkeypatch) -> None:
    from assistant_chat.embedders.base import EmbeddingUpstreamError
    from assistant_chat.knowledge import hybrid

    def down(model: str, text: str) -> np.ndarray:
        raise EmbeddingUpstreamError("provider down")

    monkeypatch.setattr(hybrid, "query_vector", down)
    hits = search(assistant=handbook, query="north lot permit")
    assert hits == search(assistant=handbook, query="north lot permit", mode="lexical")
    assert File.objects.get(pk=hits[0].file_pk).name == "parking.txt"


def test_cache_is_per_process_and_forgettable(handbook: Assistant) -> None:
    vectors.forget_cache()
    query = query_vector("offline", "hot meals")
    assert vector_search(assistant_id=handbook.pk, model="offline", query=query, limit=1)
    assert vectors._cache
