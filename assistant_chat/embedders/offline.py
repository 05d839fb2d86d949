"""The built-in embedder: wordllama's bundled `l2_supercat_256` weights, no network, no key.

The weights (about 16 MB, 256 dimensions) ship inside the wordllama wheel. Its loader looks for the bundled
tokenizer in the wrong folder and would then download it, so it is pointed at the installed package's own folder
with downloads disabled: nothing is fetched at run time. Imports nothing from Django.

The model is a bag of static token embeddings, averaged. Tokenizing was most of its cost (about 0.6 s per 1,000
chunks against 0.1 s for the averaging), and its tokenizer (BPE after a `▁` per space, no pre-tokenizer) never
merges across a word boundary, so each whitespace-separated word's token ids are cached per process and only new
words are tokenized. The one difference from wordllama's own `embed`: a line break counts as a space.
"""

from __future__ import annotations

import threading
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from .base import Embedder, normalise_rows

_lock = threading.Lock()
_model: Any = None  # one load per process: the matrix is 16 MB and loading takes ~0.2 s
# A word's token ids; emptied when it grows past the bound. Tuples, not lists: a tuple of ints leaves the garbage
# collector's view at its first pass, while 30,000 cached lists made each full collection cost ~80 ms in a search.
_word_ids: dict[str, tuple[int, ...]] = {}
WORD_CACHE_MAX = 300_000  # about 30 MB


def _load() -> Any:
    global _model
    if _model is None:
        with _lock:
            if _model is None:
                import wordllama  # imported lazily: processes that never embed offline don't pay for it
                from wordllama import WordLlama

                model = WordLlama.load(
                    config="l2_supercat", dim=256, cache_dir=Path(wordllama.__file__).parent, disable_download=True
                )
                model.tokenizer.no_padding()  # words are tokenized one by one: padding would only cost
                _model = model
    return _model


def warm_in_background() -> threading.Thread:
    """Load the model in a daemon thread. A server calls this as it starts: the first embedding in a process pays
    for the load (0.44 s of CPU measured, later ones 0.3 ms), which would otherwise land in the first question's
    time to first token, in every server process after every restart."""
    thread = threading.Thread(target=_load, name="offline-embedder-load", daemon=True)
    thread.start()
    return thread


def _token_ids(model: Any, words: list[list[str]]) -> None:
    """Tokenize, in one batch, the words not cached yet."""
    missing = {word for text in words for word in text if word not in _word_ids}
    if not missing:
        return
    if len(_word_ids) + len(missing) > WORD_CACHE_MAX:
        _word_ids.clear()
    fresh = list(missing)
    vocabulary = model.embedding.shape[0]
    for word, encoding in zip(fresh, model.tokenizer.encode_batch(fresh, add_special_tokens=False), strict=True):
        _word_ids[word] = tuple([min(max(i, 0), vocabulary - 1) for i in encoding.ids])


def _text_ids(model: Any, words: list[str]) -> list[int]:
    """A text's token ids from the word cache (`_token_ids` has filled it for these words)."""
    try:
        return list(chain.from_iterable(map(_word_ids.__getitem__, words)))
    except KeyError:  # a word dropped by a concurrent clear: tokenize this text's words again
        _token_ids(model, [words])
        return list(chain.from_iterable(map(_word_ids.__getitem__, words)))


# Each word's token vectors summed, one row per word seen by `embed_runs` in this process (a row per occurrence is
# gathered per question instead of a row per token). Emptied when full; float32, so WORD_VECTORS_MAX rows are 50 MB
# (of memory used as rows are written).
WORD_VECTORS_MAX = 50_000
_word_rows: dict[str, int] = {}
_word_matrix = np.zeros((0, 256), dtype=np.float32)


def _word_vectors(model: Any, words: list[str]) -> np.ndarray:
    """One row per word of `words`: the sum of its tokens' vectors (zero for a word without tokens)."""
    global _word_matrix
    with _lock:  # rows are indices into a matrix that grows (or is emptied) under the same lock
        rows = list(map(_word_rows.get, words))
        missing = list({word for word, row in zip(words, rows, strict=True) if row is None}) if None in rows else []
        if missing:
            if len(_word_rows) + len(missing) > WORD_VECTORS_MAX:
                _word_rows.clear()
                missing = list(set(words))  # the batch's cached words went with the rest
            _token_ids(model, [missing])
            fresh = _token_sums(model, missing)
            used = len(_word_rows)
            if used + len(missing) > len(_word_matrix):
                # Made once at full size: zeroed memory is only mapped as rows are written, while doubling as it
                # filled copied up to 32 MB in one question (~100 ms measured, the search's p99).
                grown = np.zeros((max(WORD_VECTORS_MAX, used + len(missing)), fresh.shape[1]), np.float32)
                grown[:used] = _word_matrix[:used]
                _word_matrix = grown
            _word_matrix[used : used + len(missing)] = fresh
            _word_rows.update(zip(missing, range(used, used + len(missing)), strict=True))
            rows = list(map(_word_rows.__getitem__, words))
        return _word_matrix[np.array(rows, dtype=np.int64)]


def _token_sums(model: Any, words: list[str]) -> np.ndarray:
    """Each word's token vectors summed (zero for a word without tokens), gathered in one go per token count: a
    question's sentence stage meets a few hundred new words, and a gather and sum per word cost ~3 µs each."""
    table = model.embedding
    out = np.zeros((len(words), table.shape[1]), dtype=np.float32)
    by_length: dict[int, tuple[list[int], list[int]]] = {}
    for row, word in enumerate(words):
        ids = _word_ids.get(word) or model.tokenizer.encode(word, add_special_tokens=False).ids
        if ids:
            rows, flat = by_length.setdefault(len(ids), ([], []))
            rows.append(row)
            flat.extend(ids)
    for length, (rows, flat) in by_length.items():
        out[rows] = table[flat].reshape(len(rows), length, -1).sum(axis=1)
    return out


class OfflineEmbedder(Embedder):
    """Average-pooled static token embeddings: tens of thousands of sentences a second on one core."""

    model = "offline"
    dimensions = 256
    local = True
    # Tokens past this many are ignored: padding every text of a batch to a 50,000-token outlier costs memory.
    max_chars = 20_000

    def embed(self, texts: list[str]) -> np.ndarray:
        """Rows are L2-normalised float32 (an empty text is a zero row), shape (len(texts), 256)."""
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        model = _load()
        words = [text[: self.max_chars].split() for text in texts]
        _token_ids(model, words)
        table = model.embedding
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(words):
            ids = np.fromiter(_text_ids(model, text), dtype=np.int64)
            if len(ids):
                # Gathered per text: a few hundred rows stay in cache (a whole batch's would not).
                out[row] = table[ids].mean(axis=0)
        return normalise_rows(out)

    def embed_words(self, words: list[str]) -> np.ndarray:
        """From each word's token sum (a mean's direction is its sum's). Not through the sentence stage's word
        cache: search keeps these words' vectors itself (knowledge/word_table.py), and thousands of lower-cased
        words would crowd that cache's own."""
        if not words:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        model = _load()
        _token_ids(model, [words])
        return normalise_rows(_token_sums(model, words))

    def embed_runs(self, texts: list[list[str]], longest: int = 2) -> list[np.ndarray]:
        """As the contract says, from each word's token sum (cached per process): a piece's sum is the sum of its
        words', a run's the sum of its pieces'. A mean's direction is its sum's, so nothing is divided. Search
        re-ranks 20 chunks' sentences and pairs per question; gathering every token's vector cost three times as
        much on multi-token words."""
        split = [[piece.split() for piece in pieces] for pieces in texts]
        lengths = [len(words) for pieces in split for words in pieces]
        flat = [word for pieces in split for words in pieces for word in words]
        vectors = _word_vectors(_load(), flat)
        piece_sums = np.zeros((len(lengths), self.dimensions), dtype=np.float32)
        ends = np.cumsum(lengths).tolist()
        for row, (start, end) in enumerate(zip([0, *ends[:-1]], ends, strict=True)):
            if end > start:  # slice by slice: 10x faster here than np.add.reduceat or cumsum along rows
                piece_sums[row] = vectors[start:end].sum(axis=0)
        out, first = [], 0
        for pieces in split:
            sums = piece_sums[first : first + len(pieces)]
            first += len(pieces)
            blocks = [sums]
            for size in range(2, min(longest, len(pieces)) + 1):
                windows = len(pieces) - size + 1
                blocks.append(np.add.reduce([sums[i : windows + i] for i in range(size)]))
            out.append(normalise_rows(np.concatenate(blocks)))
        return out
