"""The contract every embedder keeps, and the errors it raises; no Django, no HTTP here.

EmbeddingError            anything that kept an embedder from returning vectors
├── EmbedderNotConfigured no key / URL for a provider embedder (a setup problem, not retried)
└── EmbeddingUpstreamError the server answered badly (status, shape or dimensions), or could not be reached
"""

from __future__ import annotations

import numpy as np


class EmbeddingError(Exception):
    """An embedder could not return vectors."""


class EmbedderNotConfigured(EmbeddingError):
    """The embedder needs a key or URL that is not configured."""


class EmbeddingUpstreamError(EmbeddingError):
    """The embedding server failed, or answered with something that is not the documented format."""


def normalise_rows(matrix: np.ndarray) -> np.ndarray:
    """Each row scaled to unit length (zero rows stay zero), so a dot product is the cosine similarity."""
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    np.divide(matrix, norms, out=matrix, where=norms > 0)
    return matrix


class Embedder:
    """Turns texts into vectors. `model` is the id recorded on an assistant; `dimensions` its vector length.

    `embed` is synchronous (ingestion and re-embedding run in the worker; a query's single text is fast), returns
    float32 rows, L2-normalised, one per text, in order.
    """

    model: str = ""
    dimensions: int = 0
    # Computed in this process in a bounded time (no network): ingestion may then embed while its transaction
    # writes the chunks, instead of before it (a provider's seconds would hold the file's locks).
    local: bool = False

    def embed(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def embed_query(self, text: str) -> np.ndarray:
        """One text as a 1-D vector (the same space as `embed`)."""
        return self.embed([text])[0]
