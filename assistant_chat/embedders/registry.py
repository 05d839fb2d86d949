"""Which embedder serves a model id. The caller (knowledge/) passes the configuration; no Django here.

`offline` is built in; OpenAI's and Gemini's models are known by name; any other id is a model of the
OpenAI-compatible server at `compatible_base_url` (Ollama, vLLM, llama.cpp, text-embeddings-inference).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from . import minilm
from .base import Embedder, EmbedderNotConfigured
from .gemini import GEMINI_MODELS, GeminiEmbedder
from .offline import OfflineEmbedder
from .openai import OPENAI_MODELS, OpenAIEmbedder

OFFLINE = "offline"


@dataclass(frozen=True)
class EmbedderSettings:
    openai_api_key: str = ""
    openai_base_url: str = "https://api.openai.com/v1"
    gemini_api_key: str = ""
    gemini_base_url: str = "https://generativelanguage.googleapis.com"
    compatible_base_url: str = ""  # e.g. http://127.0.0.1:11434/v1 for Ollama
    compatible_api_key: str = ""
    timeout: float = 60.0


def known_models(config: EmbedderSettings) -> list[str]:
    """The ids offered to staff: the built-in one, then those whose provider is configured."""
    models = [OFFLINE]
    if minilm.available():
        models.append(minilm.MODEL)
    if config.openai_api_key:
        models += list(OPENAI_MODELS)
    if config.gemini_api_key:
        models += list(GEMINI_MODELS)
    return models


_lock = threading.Lock()
_compatible_dimensions: dict[tuple[str, str], int] = {}  # learned per server and model, so a check is cheap


def get_embedder(model: str, config: EmbedderSettings) -> Embedder:
    """The embedder for `model`; EmbedderNotConfigured when its provider has no key or URL."""
    model = (model or "").strip()
    if not model:
        raise EmbedderNotConfigured("No embedding model given")
    if model == OFFLINE:
        return OfflineEmbedder()
    if model == minilm.MODEL:
        if not minilm.available():
            raise EmbedderNotConfigured(minilm.NOT_INSTALLED)
        return minilm.MiniLMEmbedder()
    if model in OPENAI_MODELS:
        return OpenAIEmbedder(
            model=model, base_url=config.openai_base_url, api_key=config.openai_api_key, timeout=config.timeout
        )
    if model in GEMINI_MODELS:
        return GeminiEmbedder(
            model=model, api_key=config.gemini_api_key, base_url=config.gemini_base_url, timeout=config.timeout
        )
    if not config.compatible_base_url:
        raise EmbedderNotConfigured(
            f"Unknown embedding model {model!r}: set EMBEDDINGS_BASE_URL to an OpenAI-compatible server that serves it"
        )
    key = (config.compatible_base_url, model)
    embedder = OpenAIEmbedder(
        model=model,
        base_url=config.compatible_base_url,
        api_key=config.compatible_api_key,
        require_key=False,
        dimensions=_compatible_dimensions.get(key, 0),
        timeout=config.timeout,
    )
    return _Remembering(embedder, key)


class _Remembering(Embedder):
    """Wraps a compatible server's embedder to remember the length it learned from its first answer."""

    def __init__(self, inner: OpenAIEmbedder, key: tuple[str, str]) -> None:
        self.inner = inner
        self.key = key
        self.model = inner.model
        self.dimensions = inner.dimensions

    def embed(self, texts: list[str]):  # type: ignore[no-untyped-def]
        matrix = self.inner.embed(texts)
        self.dimensions = self.inner.dimensions
        with _lock:
            _compatible_dimensions[self.key] = self.dimensions
        return matrix
