"""OpenAI's /v1/embeddings and OpenAI-compatible servers (Ollama, vLLM, llama.cpp, TEI), against a local server
answering in the documented format: {"object": "list", "data": [{"object": "embedding", "index", "embedding"}]}."""

from __future__ import annotations

import numpy as np
import pytest

from assistant_chat.embedders.base import EmbedderNotConfigured, EmbeddingUpstreamError
from assistant_chat.embedders.openai import OpenAIEmbedder
from assistant_chat.embedders.registry import EmbedderSettings, get_embedder

from .local_server import Seen, serve, vector_for


def openai_answer(dims: int):
    def answer(seen: Seen):
        texts = seen.body["input"]
        data = [{"object": "embedding", "index": i, "embedding": vector_for(t, dims)} for i, t in enumerate(texts)]
        data.reverse()  # the index, not the order, says which input a row belongs to
        return 200, {"object": "list", "data": data, "model": seen.body["model"], "usage": {"prompt_tokens": 3}}

    return answer


def test_openai_request_and_answer() -> None:
    with serve(openai_answer(1536)) as server:
        embedder = OpenAIEmbedder(model="text-embedding-3-small", base_url=server.url + "/v1", api_key="sk-test")
        matrix = embedder.embed(["otters", "volcanoes"])
    assert matrix.shape == (2, 1536) and matrix.dtype == np.float32
    assert np.allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)
    expected = np.asarray(vector_for("volcanoes", 1536), dtype=np.float32)
    assert np.allclose(matrix[1], expected / np.linalg.norm(expected), atol=1e-6)
    [request] = server.requests
    assert request.path == "/v1/embeddings"
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.body == {
        "model": "text-embedding-3-small",
        "input": ["otters", "volcanoes"],
        "encoding_format": "float",
    }


def test_large_inputs_go_in_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(OpenAIEmbedder, "batch_size", 3)
    with serve(openai_answer(8)) as server:
        embedder = OpenAIEmbedder(model="text-embedding-3-small", base_url=server.url, api_key="k", dimensions=8)
        matrix = embedder.embed([f"text {n}" for n in range(7)])
    assert matrix.shape == (7, 8)
    assert [len(r.body["input"]) for r in server.requests] == [3, 3, 1]


def test_server_errors_are_retried_then_reported() -> None:
    calls = []

    def flaky(seen: Seen):
        calls.append(1)
        if len(calls) == 1:
            return 503, {"error": {"message": "overloaded"}}
        return openai_answer(4)(seen)

    with serve(flaky) as server:
        embedder = OpenAIEmbedder(model="m", base_url=server.url, api_key="k", dimensions=4)
        embedder_matrix = embedder.embed(["a"])
    assert embedder_matrix.shape == (1, 4) and len(calls) == 2

    with serve(lambda seen: (429, {"error": {"message": "slow down"}})) as server:
        embedder = OpenAIEmbedder(model="m", base_url=server.url, api_key="k", dimensions=4)
        with pytest.raises(EmbeddingUpstreamError, match="slow down"):
            embedder.embed(["a"])
    assert len(server.requests) == 3  # first try and two retries


def test_a_client_error_is_not_retried_and_says_why() -> None:
    with serve(lambda seen: (401, {"error": {"message": "Incorrect API key provided"}})) as server:
        embedder = OpenAIEmbedder(model="text-embedding-3-large", base_url=server.url, api_key="bad")
        with pytest.raises(EmbeddingUpstreamError, match="401: Incorrect API key"):
            embedder.embed(["a"])
    assert len(server.requests) == 1


def test_wrong_dimensions_or_count_are_refused() -> None:
    with serve(openai_answer(12)) as server:
        embedder = OpenAIEmbedder(model="text-embedding-3-small", base_url=server.url, api_key="k")
        with pytest.raises(EmbeddingUpstreamError, match="12-dimensional embeddings, expected 1536"):
            embedder.embed(["a"])
    with serve(lambda seen: (200, {"data": []})) as server:
        embedder = OpenAIEmbedder(model="m", base_url=server.url, api_key="k")
        with pytest.raises(EmbeddingUpstreamError, match="0 embeddings for 1 texts"):
            embedder.embed(["a"])


def test_an_unreachable_server_is_an_upstream_error() -> None:
    with serve(openai_answer(4)) as server:
        url = server.url
    embedder = OpenAIEmbedder(model="m", base_url=url, api_key="k", timeout=2)
    with pytest.raises(EmbeddingUpstreamError, match="could not reach"):
        embedder.embed(["a"])


def test_compatible_server_needs_no_key_and_learns_its_length() -> None:
    with serve(openai_answer(768)) as server:
        config = EmbedderSettings(compatible_base_url=server.url + "/v1")
        embedder = get_embedder("nomic-embed-text", config)
        assert embedder.dimensions == 0
        assert embedder.embed(["hello"]).shape == (1, 768)
        assert embedder.dimensions == 768
        assert get_embedder("nomic-embed-text", config).dimensions == 768  # remembered per server and model
    assert "authorization" not in server.requests[0].headers
    assert server.requests[0].body["model"] == "nomic-embed-text"


def test_registry_says_what_is_missing() -> None:
    with pytest.raises(EmbedderNotConfigured, match="OPENAI_API_KEY"):
        get_embedder("text-embedding-3-small", EmbedderSettings())
    with pytest.raises(EmbedderNotConfigured, match="EMBEDDINGS_BASE_URL"):
        get_embedder("nomic-embed-text", EmbedderSettings())
    with pytest.raises(EmbedderNotConfigured, match="No embedding model"):
        get_embedder("  ", EmbedderSettings())
    assert get_embedder("offline", EmbedderSettings()).dimensions == 256
