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
    # writes the chunks, and search re-ranks a question's candidate sentences with it.
    local: bool = False

    def embed(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def embed_query(self, text: str) -> np.ndarray:
        """One text as a 1-D vector (the same space as `embed`)."""
        return self.embed([text])[0]

    def embed_words(self, words: list[str]) -> np.ndarray:
        """Each single word's vector (the same space as `embed`): search matches a question's terms to a chunk's
        words by them. An embedder that can cache per word does it faster."""
        return self.embed(words)

    def embed_runs(self, texts: list[list[str]], longest: int = 2) -> list[np.ndarray]:
        """For each text given as its pieces (sentences, in order): the vectors of every run of 1 to `longest`
        adjacent pieces joined by a space, the single pieces first, then the runs of two, and so on."""
        joined = [runs(pieces, longest) for pieces in texts]
        matrix = self.embed([run for each in joined for run in each])
        out, start = [], 0
        for each in joined:
            out.append(matrix[start : start + len(each)])
            start += len(each)
        return out


def runs(pieces: list[str], longest: int) -> list[str]:
    """Every run of 1 to `longest` adjacent pieces joined by a space, in `embed_runs` order."""
    return [" ".join(pieces[i : i + size]) for size in range(1, longest + 1) for i in range(len(pieces) - size + 1)]
