"""Gemini's batchEmbedContents against a local server answering in the documented format:
{"embeddings": [{"values": [...]}]} in request order; the key travels in x-goog-api-key."""

from __future__ import annotations

import numpy as np
import pytest

from assistant_chat.embedders.base import EmbedderNotConfigured, EmbeddingUpstreamError
from assistant_chat.embedders.gemini import GeminiEmbedder

from .local_server import Seen, serve, vector_for


def gemini_answer(dims: int):
    def answer(seen: Seen):
        texts = [request["content"]["parts"][0]["text"] for request in seen.body["requests"]]
        return 200, {"embeddings": [{"values": vector_for(text, dims)} for text in texts]}

    return answer


def test_documents_and_questions_use_their_task_types() -> None:
    with serve(gemini_answer(768)) as server:
        embedder = GeminiEmbedder(model="text-embedding-004", api_key="g-key", base_url=server.url)
        matrix = embedder.embed(["otters", "volcanoes"])
        query = embedder.embed_query("what do otters eat?")
    assert matrix.shape == (2, 768) and query.shape == (768,)
    assert np.allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)
    documents, question = server.requests
    assert documents.path == "/v1beta/models/text-embedding-004:batchEmbedContents"
    assert documents.headers["x-goog-api-key"] == "g-key"
    assert documents.body["requests"][0] == {
        "model": "models/text-embedding-004",
        "content": {"parts": [{"text": "otters"}]},
        "taskType": "RETRIEVAL_DOCUMENT",
    }
    assert question.body["requests"][0]["taskType"] == "RETRIEVAL_QUERY"


def test_batches_of_at_most_one_hundred() -> None:
    with serve(gemini_answer(3072)) as server:
        embedder = GeminiEmbedder(model="gemini-embedding-001", api_key="k", base_url=server.url)
        assert embedder.embed([f"t{n}" for n in range(150)]).shape == (150, 3072)
    assert [len(r.body["requests"]) for r in server.requests] == [100, 50]


def test_errors_say_what_the_server_said() -> None:
    answer = {
        "error": {
            "code": 400,
            "message": "API key not valid. Please pass a valid API key.",
            "status": "INVALID_ARGUMENT",
        }
    }
    with serve(lambda seen: (400, answer)) as server:
        embedder = GeminiEmbedder(model="gemini-embedding-001", api_key="bad", base_url=server.url)
        with pytest.raises(EmbeddingUpstreamError, match="API key not valid"):
            embedder.embed(["a"])
    with serve(lambda seen: (200, {"embeddings": [{"values": [1.0, 2.0]}]})) as server:
        embedder = GeminiEmbedder(model="gemini-embedding-001", api_key="k", base_url=server.url)
        with pytest.raises(EmbeddingUpstreamError, match="2-dimensional embeddings, expected 3072"):
            embedder.embed(["a"])


def test_no_key_is_a_configuration_error() -> None:
    with pytest.raises(EmbedderNotConfigured, match="GEMINI_API_KEY"):
        GeminiEmbedder(model="gemini-embedding-001", api_key="")
