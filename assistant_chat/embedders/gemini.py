"""Google's Gemini embeddings: `POST /v1beta/models/{model}:batchEmbedContents`.

Request `{"requests": [{"model": "models/{model}", "content": {"parts": [{"text"}]}, "taskType"}]}` with the key
in `x-goog-api-key`; answer `{"embeddings": [{"values": [...]}]}` in request order. Documents and questions are
embedded with their own task types (RETRIEVAL_DOCUMENT / RETRIEVAL_QUERY), as Google recommends. No Django here.
"""

from __future__ import annotations

import httpx
import numpy as np

from .base import Embedder, EmbedderNotConfigured, EmbeddingUpstreamError, normalise_rows
from .http import post_json
from .openai import _checked

GEMINI_MODELS = {"gemini-embedding-001": 3072, "text-embedding-004": 768}


class GeminiEmbedder(Embedder):
    batch_size = 100  # the API's limit per batchEmbedContents call
    max_chars = 8_000  # about 2,048 tokens, the input limit

    def __init__(
        self,
        *,
        model: str,
        api_key: str,
        base_url: str = "https://generativelanguage.googleapis.com",
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not api_key:
            raise EmbedderNotConfigured(f"The embedding model {model!r} needs GEMINI_API_KEY")
        self.model = model
        self.dimensions = GEMINI_MODELS.get(model, 0)
        self.url = f"{base_url.rstrip('/')}/v1beta/models/{model}:batchEmbedContents"
        self.headers = {"x-goog-api-key": api_key}
        self.timeout = timeout
        self.transport = transport

    def embed(self, texts: list[str]) -> np.ndarray:
        return self._embed(texts, "RETRIEVAL_DOCUMENT")

    def embed_query(self, text: str) -> np.ndarray:
        return self._embed([text], "RETRIEVAL_QUERY")[0]

    def _embed(self, texts: list[str], task: str) -> np.ndarray:
        rows = [
            self._batch(texts[start : start + self.batch_size], task) for start in range(0, len(texts), self.batch_size)
        ]
        if not rows:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        return normalise_rows(np.concatenate(rows))

    def _batch(self, texts: list[str], task: str) -> np.ndarray:
        requests = [
            {
                "model": f"models/{self.model}",
                "content": {"parts": [{"text": text[: self.max_chars] or " "}]},
                "taskType": task,
            }
            for text in texts
        ]
        answer = post_json(
            self.url, {"requests": requests}, headers=self.headers, timeout=self.timeout, transport=self.transport
        )
        embeddings = answer.get("embeddings") if isinstance(answer, dict) else None
        if not isinstance(embeddings, list) or len(embeddings) != len(texts):
            raise EmbeddingUpstreamError(
                f"{self.url} returned {len(embeddings or [])} embeddings for {len(texts)} texts"
            )
        try:
            matrix = np.asarray([item["values"] for item in embeddings], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise EmbeddingUpstreamError(f"{self.url} returned embeddings in an unknown shape") from exc
        return _checked(matrix, self, self.url)
