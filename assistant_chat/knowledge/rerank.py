"""Second-stage ranking of hybrid search's first candidates: by their best sentence, and by the question's words.

A chunk's vector is the mean of about 250 tokens, while a question in other words matches one or two of its
sentences, and a few of its words; the mean dilutes them. So the first `DEPTH` fused candidates are ranked again by
reciprocal rank fusion of three rankings: their fused order, their best sentence (or pair of adjacent sentences) by
the same embedder, and how closely the chunk's words match the question's terms by meaning (for each term, the
nearest word of the chunk, averaged: "dog" meets "pets", "nicked" meets "theft", and the word itself scores 1).
Only for an embedder that runs in this process (`Embedder.local`): a provider's would cost a paid round trip per
question.

And a question written in the document's own words has its answer where those words stand together: when the
first words-only hit holds at least `LEXICAL_LEAD_COVERAGE` of the question's terms, it leads. Paraphrased questions
share few words with any passage, so this rarely fires for them.

The settings were chosen on bench/retrieval_dev with bench/fusion_dev.py (docs/benchmarks.md), never on the held-out
bench/retrieval_data. Reads only; no Django models, no HTTP.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict

import numpy as np

from ..embedders.base import Embedder
from . import word_table
from .search import WORD, Hit, query_terms

DEPTH = 20  # fused candidates ranked again by sentences and words (settings.SEARCH_RERANK_DEPTH)
SENTENCE_WEIGHT = 1.0  # the sentence ranking's weight beside the fused order's (1.0)
WORD_WEIGHT = 1.0  # the word-match ranking's weight beside the fused order's (1.0)
RERANK_K = 5  # RRF constant of the second stage: a short list, so the top places count
LEXICAL_LEAD_COVERAGE = 0.5
STEM = 5  # letters a question's term and a chunk's word must share at their start (a language-free stem)
MIN_SENTENCE_WORDS = 3  # shorter pieces (a heading, "Yes.") match anything and mean little

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")  # within a line: a line break always ends a sentence

# Sentence vectors per chunk text, per process: follow-up questions and busy rooms search the same chunks again.
_CACHE_SIZE = 4096
_cache: OrderedDict[tuple[str, int, str], np.ndarray] = OrderedDict()
_lock = threading.Lock()


def sentences(text: str) -> list[str]:
    """A chunk's sentences (the whole text when none is long enough)."""
    # Line by line, then by punctuation: one pattern with both costs twice as much (a lookbehind at every place).
    pieces = [piece for line in text.split("\n") for piece in _SENTENCE_END.split(line.strip())]
    return [piece for piece in pieces if len(piece.split()) >= MIN_SENTENCE_WORDS] or [text]


def _units(embedder: Embedder, hits: list[Hit]) -> list[np.ndarray]:
    keys = [(embedder.model, hit.chunk_id, hit.text) for hit in hits]
    with _lock:
        found = {key: _cache[key] for key in keys if key in _cache}
    missing = [(key, hit) for key, hit in zip(keys, hits, strict=True) if key not in found]
    if missing:
        # Each sentence and each pair of adjacent ones: an answer often spans two. Rows come L2-normalised.
        vectors = embedder.embed_runs([sentences(hit.text) for _, hit in missing], longest=2)
        with _lock:
            for (key, _), matrix in zip(missing, vectors, strict=True):
                found[key] = _cache[key] = matrix
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
    return [found[key] for key in keys]


def prepare(embedder: Embedder, hits: list[Hit]) -> None:
    """Embed `hits`' sentences and words ahead of `by_meaning` (both are cached per process)."""
    _units(embedder, hits)
    word_table.chunk_rows(embedder, [(hit.chunk_id, hit.text) for hit in hits])


def by_meaning(
    embedder: Embedder, query: np.ndarray, hits: list[Hit], depth: int = DEPTH, terms: list[str] | None = None
) -> list[Hit]:
    """The first `depth` hits ordered by RRF of their order, their best sentence's similarity to the question's
    vector `query`, and (given the question's `terms`) their words' match to them; the rest after."""
    head, tail = hits[:depth], hits[depth:]
    if len(head) < 2:
        return hits
    best = [float((units @ query).max()) for units in _units(embedder, head)]
    rankings = [(SENTENCE_WEIGHT, best)]
    if terms:
        rankings.append((WORD_WEIGHT, word_match(embedder, terms, head)))
    fused = [1.0 / (RERANK_K + i + 1) for i in range(len(head))]
    for weight, scores in rankings:
        for rank, i in enumerate(sorted(range(len(head)), key=lambda i: (-scores[i], i))):
            fused[i] += weight / (RERANK_K + rank + 1)
    order = sorted(range(len(head)), key=lambda i: (-fused[i], i))
    return [head[i] for i in order] + tail


def word_match(embedder: Embedder, terms: list[str], hits: list[Hit]) -> list[float]:
    """For each hit, the mean over `terms` of the cosine between a term and the hit's nearest word by meaning."""
    if not terms:
        return [0.0] * len(hits)
    table, rows = word_table.chunk_rows(embedder, [(hit.chunk_id, hit.text) for hit in hits])
    lengths = np.array([len(each) for each in rows])
    if not lengths.any():
        return [0.0] * len(hits)
    flat = np.concatenate(rows)
    used, inverse = np.unique(flat, return_inverse=True)  # each distinct word once in the product
    similarity = (table.matrix[used] @ embedder.embed_words(terms).T).T  # terms x distinct words, row-major product
    starts = np.cumsum(lengths) - lengths
    present = lengths > 0
    best = np.maximum.reduceat(similarity[:, inverse], starts[present], axis=1)  # terms x chunks with words
    scores = np.zeros(len(hits))
    scores[present] = best.mean(axis=0)
    return scores.tolist()


def coverage(query: str, text: str) -> float:
    """The share of the question's search terms found in `text`, compared by their first STEM letters."""
    terms = query_terms(query)
    if not terms:
        return 0.0
    words = {word[:STEM] for word in WORD.findall(text.lower())}
    return sum(1 for term in terms if term[:STEM] in words) / len(terms)


def lexical_lead(query: str, lexical: list[Hit], hits: list[Hit], first_coverage: float | None = None) -> list[Hit]:
    """`hits` with the first words-only hit moved to the top when it holds enough of the question's terms
    (`first_coverage`: that share, when the caller has it already)."""
    if not lexical or not hits or hits[0].chunk_id == lexical[0].chunk_id:
        return hits
    first = lexical[0]
    if (coverage(query, first.text) if first_coverage is None else first_coverage) < LEXICAL_LEAD_COVERAGE:
        return hits
    lead = next((hit for hit in hits if hit.chunk_id == first.chunk_id), None)
    if lead is None:  # cut off by the limit: it leads with the score of the list's first
        lead = Hit(first.chunk_id, first.file_pk, first.ordinal, first.text, first.pages, hits[0].score)
    return [lead, *[hit for hit in hits if hit.chunk_id != first.chunk_id]][: len(hits)]
