"""Changing an assistant's embedding model re-embeds its chunks in a job, with progress; questions then use it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from assistant_chat import services
from assistant_chat.jobs import reembed
from assistant_chat.jobs.reembed import EmbeddingModelError, embedding_model_change
from assistant_chat.knowledge.hybrid import search
from assistant_chat.models import Assistant, Chunk, ChunkVector, File
from tests.embedders.local_server import Seen, serve, vector_for

pytestmark = pytest.mark.django_db(transaction=True)

DIMS = 48


def compatible(seen: Seen):
    texts = seen.body["input"]
    return 200, {
        "object": "list",
        "data": [{"index": i, "embedding": vector_for(t, DIMS)} for i, t in enumerate(texts)],
    }


@pytest.fixture
def assistant() -> Assistant:
    assistant = services.assistant_create(name="handbook")
    for n in range(5):
        data = f"Policy {n}: pets are not permitted on company premises, section {n}.".encode()
        assert (
            services.file_upload(assistant=assistant, name=f"p{n}.txt", data=data)[2].result(timeout=30) == "Available"
        )
    return assistant


def test_a_model_change_re_embeds_with_progress_and_questions_follow(
    assistant: Assistant, settings, monkeypatch
) -> None:
    monkeypatch.setattr(reembed, "BATCH", 2)
    progress: list[float] = []
    write = reembed.vectors_write

    def watched(**kwargs):
        progress.append(Assistant.objects.get(pk=assistant.pk).embedding_progress)
        return write(**kwargs)

    monkeypatch.setattr(reembed, "vectors_write", watched)
    with serve(compatible) as server:
        settings.EMBEDDINGS_BASE_URL = server.url + "/v1"
        embedding_model_change(assistant=assistant, model="fake-embed")  # immediate jobs: runs on commit
        assistant.refresh_from_db()
        assert (assistant.embedding_model, assistant.embedded_with) == ("fake-embed", "fake-embed")
        assert assistant.embedding_progress == 1.0 and assistant.embedding_error == ""
        chunks = Chunk.objects.filter(assistant=assistant).count()
        assert ChunkVector.objects.filter(assistant=assistant, model="fake-embed", dimensions=DIMS).count() == chunks
        assert not ChunkVector.objects.filter(assistant=assistant, model="offline").exists()  # old vectors dropped
        assert progress[0] == 0.0 and progress == sorted(progress) and 0 < progress[-1] < 1
        assert len(progress) >= 3  # one write per batch of 2 chunks

        served = len(server.requests)
        hits = search(assistant=assistant, query="Can I bring my dog?")
        assert hits
        question = server.requests[served:]
        assert [r.body["input"] for r in question] == [["Can I bring my dog?"]]  # embedded by the new model
        assert question[0].body["model"] == "fake-embed"

        # New files are embedded with the new model from now on.
        services.file_upload(assistant=assistant, name="new.txt", data=b"Bicycles go in the basement.")[2].result(30)
        new = File.objects.get(assistant=assistant, name="new.txt")
        assert set(ChunkVector.objects.filter(file=new).values_list("model", flat=True)) == {"fake-embed"}


def test_until_the_job_is_done_search_keeps_the_old_model(assistant: Assistant, settings) -> None:
    with serve(lambda seen: (500, {"error": {"message": "model loading"}})) as server:
        settings.EMBEDDINGS_BASE_URL = server.url
        embedding_model_change(assistant=assistant, model="fake-embed")
    assistant.refresh_from_db()
    # The job failed (immediate mode gives up on the first failure); nothing switched, the reason is recorded.
    assert assistant.embedding_model == "fake-embed" and assistant.embedded_with == "offline"
    assert "model loading" in assistant.embedding_error
    assert search(assistant=assistant, query="Can I bring my dog?")  # offline vectors still answer
    assert set(ChunkVector.objects.filter(assistant=assistant).values_list("model", flat=True)) == {"offline"}


def test_an_unusable_model_is_refused_with_the_reason(assistant: Assistant, settings) -> None:
    settings.EMBEDDINGS_BASE_URL = ""
    with pytest.raises(EmbeddingModelError, match="EMBEDDINGS_BASE_URL"):
        embedding_model_change(assistant=assistant, model="nomic-embed-text")
    settings.OPENAI_API_KEY = ""
    with pytest.raises(EmbeddingModelError, match="OPENAI_API_KEY"):
        embedding_model_change(assistant=assistant, model="text-embedding-3-small")
    assistant.refresh_from_db()
    assert assistant.embedding_model == "offline"


def test_choosing_the_current_model_queues_nothing(assistant: Assistant) -> None:
    assert embedding_model_change(assistant=assistant, model="offline") is None
    assistant.refresh_from_db()
    assert assistant.embedding_progress == 1.0


def test_a_superseded_job_does_nothing(assistant: Assistant) -> None:
    Assistant.objects.filter(pk=assistant.pk).update(embedding_model="offline")
    context = SimpleNamespace(attempt=1)
    assert reembed.reembed_assistant.func(context, assistant_id=assistant.pk, model="fake-embed") == "superseded"
    assert reembed.reembed_assistant.func(context, assistant_id=assistant.pk + 99, model="offline") == "gone"
