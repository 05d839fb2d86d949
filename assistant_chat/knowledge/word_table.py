"""Per process: the unit vectors of the words met in search candidates, one table, and each chunk's content words as
row numbers in it, for the word ranking (rerank.word_match).

A question's 20 candidates hold some 8,000 words when chunks are long (680 words). Splitting, looking up, gathering
and normalising them on every question cost ~5 ms, so each word is embedded and normalised once per process, and
each chunk keeps its words as row numbers (a few KB). The table is float32 (41 MB at WORDS_MAX rows: float16 would
halve it but converting the gathered rows back costs more than the rest of the ranking) and starts
afresh when full or when another embedder asks; a chunk's rows name the table they index, so rows of an older table
are never read against a newer one. Rows are only ever appended, so a reader needs no lock once it holds its rows.
Reads only; no Django models, no HTTP.
"""

from __future__ import annotations

import string
import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from ..embedders.base import Embedder
from .search import STOPWORDS, WORD

WORDS_MAX = 40_000  # rows of the table: 256 dimensions in float32 are 41 MB
CHUNKS_MAX = 4096  # chunks whose row numbers are kept (~400 words each: a few MB)


# ASCII punctuation to spaces: after it nearly every whitespace-separated token is one word already.
_PUNCTUATION = str.maketrans({character: " " for character in string.punctuation})


def content_words(text: str) -> list[str]:
    """A text's distinct words as the word search splits them (`WORD`), lower-cased, stopwords left out, in no
    particular order. Tokens that are not one word after the ASCII punctuation is gone (`isalnum` is `WORD`'s class)
    go through the pattern; splitting this way costs less than half of running the pattern over the whole text."""
    words = set(text.lower().translate(_PUNCTUATION).split())
    odd = [token for token in words if not token.isalnum()]
    if odd:
        words.difference_update(odd)
        for token in odd:
            words.update(WORD.findall(token))
    words -= STOPWORDS
    return list(words)


class Table:
    """Unit word vectors of one embedder, appended as they are met."""

    def __init__(self, model: str, dimensions: int) -> None:
        self.model = model
        self.rows: dict[str, int] = {}
        # Full size at once: zeroed memory is only mapped as rows are written, and no question pays for copying
        # the table into a doubled one (~100 ms at 32,000 rows).
        self.matrix = np.zeros((WORDS_MAX, dimensions), dtype=np.float32)

    def add(self, words: Sequence[str], vectors: np.ndarray) -> None:
        """Append the words not in the table yet (caller holds the lock)."""
        fresh: dict[str, int] = {}  # word -> its index in `vectors` (first occurrence)
        for index, word in enumerate(words):
            if word not in self.rows and word not in fresh:
                fresh[word] = index
        used = len(self.rows)
        if used + len(fresh) > len(self.matrix):
            # More than WORDS_MAX words at once: a bigger copy (readers holding the old array still find every row
            # they were given in it).
            grown = np.zeros((max(2 * len(self.matrix), used + len(fresh)), self.matrix.shape[1]), np.float32)
            grown[:used] = self.matrix[:used]
            self.matrix = grown
        self.matrix[used : used + len(fresh)] = vectors[list(fresh.values())]  # one copy, not a row at a time
        self.rows.update(zip(fresh, range(used, used + len(fresh)), strict=True))


_lock = threading.Lock()
_table: Table | None = None
_chunks: OrderedDict[tuple[int, str], tuple[Table, np.ndarray]] = OrderedDict()


def chunk_rows(embedder: Embedder, keys: list[tuple[int, str]]) -> tuple[Table, list[np.ndarray]]:
    """The table of `embedder`'s words and, for each (chunk id, text), the rows of the text's content words."""
    with _lock:
        table = _table if _table is not None and _table.model == embedder.model else None
        found = {}
        if table is not None:
            for key in keys:
                entry = _chunks.get(key)
                if entry is not None and entry[0] is table:
                    found[key] = entry[1]
    missing = {key: content_words(key[1]) for key in keys if key not in found}
    if not missing:
        assert table is not None
        return table, [found[key] for key in keys]
    known = table.rows if table is not None else {}
    new = list(dict.fromkeys(word for words in missing.values() for word in words if word not in known))
    vectors = embedder.embed_words(new) if new else None  # outside the lock: other searches go on meanwhile
    with _lock:
        first, table = table, _current(embedder, len(new))
        if new:
            table.add(new, vectors)  # type: ignore[arg-type]
        if table is not first:  # the table started afresh meanwhile (rare): every chunk's rows are counted again
            missing = {key: missing.get(key) or content_words(key[1]) for key in keys}
            found = {}
            late = list(dict.fromkeys(w for words in missing.values() for w in words if w not in table.rows))
            if late:
                table.add(late, embedder.embed_words(late))
        for key, words in missing.items():
            rows = np.array(list(map(table.rows.__getitem__, words)), dtype=np.int32)
            found[key] = rows
            _chunks[key] = (table, rows)
        while len(_chunks) > CHUNKS_MAX:
            _chunks.popitem(last=False)
    return table, [found[key] for key in keys]


def _current(embedder: Embedder, adding: int) -> Table:
    """The table to add to (caller holds the lock): a new one for another embedder, or when this one is full."""
    global _table
    if _table is None or _table.model != embedder.model or len(_table.rows) + adding > WORDS_MAX:
        _table = Table(embedder.model, embedder.dimensions)
        _chunks.clear()
    return _table
