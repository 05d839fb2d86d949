"""OpenAI's `/v1/embeddings`, and every server that speaks it (Ollama, vLLM, llama.cpp, text-embeddings-inference).

Request `{"model", "input": [...], "encoding_format": "float"}`; answer `{"data": [{"index", "embedding"}], ...}`,
rows matched back by `index`. No Django here.
"""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np

from .base import Embedder, EmbedderNotConfigured, EmbeddingUpstreamError, normalise_rows
from .http import post_json

# OpenAI's own models and their lengths; a compatible server's model learns its length from its first answer.
OPENAI_MODELS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072}


class OpenAIEmbedder(Embedder):
    batch_size = 256  # OpenAI accepts up to 2,048 inputs; smaller batches keep one request's retry cheap
    max_chars = 24_000  # about 8k tokens, the models' input limit

    def __init__(
        self,
        *,
        model: str,
        base_url: str,
        api_key: str = "",
        dimensions: int = 0,
        upstream_model: str | None = None,
        require_key: bool = True,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if require_key and not api_key:
            raise EmbedderNotConfigured(f"The embedding model {model!r} needs OPENAI_API_KEY")
        if not base_url:
            raise EmbedderNotConfigured(f"The embedding model {model!r} needs a server URL (EMBEDDINGS_BASE_URL)")
        self.model = model
        self.dimensions = dimensions or OPENAI_MODELS.get(model, 0)
        self.upstream_model = upstream_model or model
        self.url = base_url.rstrip("/") + "/embeddings"
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout = timeout
        self.transport = transport

    def embed(self, texts: list[str]) -> np.ndarray:
        rows: list[np.ndarray] = []
        for start in range(0, len(texts), self.batch_size):
            rows.append(self._batch([text[: self.max_chars] or " " for text in texts[start : start + self.batch_size]]))
        if not rows:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        return normalise_rows(np.concatenate(rows))

    def _batch(self, texts: list[str]) -> np.ndarray:
        body: dict[str, Any] = {"model": self.upstream_model, "input": texts, "encoding_format": "float"}
        answer = post_json(self.url, body, headers=self.headers, timeout=self.timeout, transport=self.transport)
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, list) or len(data) != len(texts):
            raise EmbeddingUpstreamError(f"{self.url} returned {len(data or [])} embeddings for {len(texts)} texts")
        try:
            ordered = sorted(data, key=lambda item: int(item.get("index", 0)))
            matrix = np.asarray([item["embedding"] for item in ordered], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise EmbeddingUpstreamError(f"{self.url} returned embeddings in an unknown shape") from exc
        return _checked(matrix, self, self.url)


def _checked(matrix: np.ndarray, embedder: Embedder, url: str) -> np.ndarray:
    """The matrix, if it is 2-D and of the embedder's length (a length learned now when none was known)."""
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise EmbeddingUpstreamError(f"{url} returned embeddings in an unknown shape")
    if not embedder.dimensions:
        embedder.dimensions = int(matrix.shape[1])
    if matrix.shape[1] != embedder.dimensions:
        raise EmbeddingUpstreamError(
            f"{url} returned {matrix.shape[1]}-dimensional embeddings, expected {embedder.dimensions}"
        )
    return matrix
