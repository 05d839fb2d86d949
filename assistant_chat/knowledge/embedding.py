"""Embedding on the Django side: which embedder an assistant uses, from settings, and a question's vector.

Called by ingestion (chunks), the re-embed job and hybrid search (questions). The embedders themselves live in
embedders/ and know nothing of Django; this module hands them the operator's settings.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
from django.conf import settings

from ..embedders.base import Embedder
from ..embedders.registry import EmbedderSettings, get_embedder, known_models


def embedder_settings() -> EmbedderSettings:
    return EmbedderSettings(
        openai_api_key=settings.OPENAI_API_KEY,
        openai_base_url=settings.OPENAI_BASE_URL,
        gemini_api_key=settings.GEMINI_API_KEY,
        gemini_base_url=settings.GEMINI_BASE_URL,
        compatible_base_url=getattr(settings, "EMBEDDINGS_BASE_URL", ""),
        compatible_api_key=getattr(settings, "EMBEDDINGS_API_KEY", ""),
        timeout=float(getattr(settings, "EMBEDDINGS_TIMEOUT", 60.0)),
    )


def embedder_for(model: str) -> Embedder:
    """The embedder of `model`; EmbedderNotConfigured (with what to set) when its provider is not configured."""
    return get_embedder(model, embedder_settings())


def embedding_models() -> list[str]:
    return known_models(embedder_settings())


# Questions repeat (a room's follow-ups, the API's retries): a small per-process memo saves a provider round trip.
_QUERY_MEMO_SIZE = 256
_memo: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
_memo_lock = threading.Lock()


def query_vector(model: str, text: str) -> np.ndarray:
    """`text` embedded by `model` as a question (raises EmbeddingError when the provider fails)."""
    key = (model, text)
    with _memo_lock:
        found = _memo.get(key)
        if found is not None:
            _memo.move_to_end(key)
            return found
    vector = embedder_for(model).embed_query(text)
    with _memo_lock:
        _memo[key] = vector
        while len(_memo) > _QUERY_MEMO_SIZE:
            _memo.popitem(last=False)
    return vector
