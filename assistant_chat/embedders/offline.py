"""The built-in embedder: wordllama's bundled `l2_supercat_256` weights, no network, no key.

The weights (about 16 MB, 256 dimensions) ship inside the wordllama wheel. Its loader looks for the bundled
tokenizer in the wrong folder and would then download it, so it is pointed at the installed package's own folder
with downloads disabled: nothing is fetched at run time. Imports nothing from Django.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from .base import Embedder, normalise_rows

_lock = threading.Lock()
_model: Any = None  # one load per process: the matrix is 16 MB and loading takes ~0.2 s


def _load() -> Any:
    global _model
    if _model is None:
        with _lock:
            if _model is None:
                import wordllama  # imported lazily: processes that never embed offline don't pay for it
                from wordllama import WordLlama

                _model = WordLlama.load(
                    config="l2_supercat", dim=256, cache_dir=Path(wordllama.__file__).parent, disable_download=True
                )
    return _model


class OfflineEmbedder(Embedder):
    """Average-pooled static token embeddings: tens of thousands of sentences a second on one core."""

    model = "offline"
    dimensions = 256
    # Tokens past this many are ignored: padding every text of a batch to a 50,000-token outlier costs memory.
    max_chars = 20_000

    def embed(self, texts: list[str]) -> np.ndarray:
        """Rows are L2-normalised float32 (an empty text is a zero row), shape (len(texts), 256)."""
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        clipped = [text[: self.max_chars] for text in texts]
        raw = _load().embed(clipped, norm=False, batch_size=128)
        return normalise_rows(np.asarray(raw, dtype=np.float32))
