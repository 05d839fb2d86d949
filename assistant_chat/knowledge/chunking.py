"""Split parsed documents into overlapping, token-bounded chunks.

Pipeline position: ingestion step 3 (upload bytes -> parse -> **chunk** -> index).
Pure Python and imports nothing from Django. Runs in linear time: 10 MB of
text chunks in a couple of seconds.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate, islice
from typing import NamedTuple

from .parsers import ParsedDocument

__all__ = ["ChunkDraft", "chunk_document", "count_tokens"]

# ---------------------------------------------------------------------------
# Token counting
# ---------------------------------------------------------------------------

# Approximates a BPE tokenizer (cl100k-style) closely enough for sizing
# chunks, without the dependency. Text is split on whitespace, and each
# whitespace-free word is split by this one regex into runs:
#   * letters: a run of up to 7 is one token (common words are single BPE
#     tokens); a longer run counts ceil(len / 4), i.e. 4-letter pieces;
#   * digits: ceil(len / 3) (BPE splits numbers into groups of up to 3);
#   * anything else (punctuation, symbols, CJK/kana/hangul): one per char.
# On English prose this overestimates real BPE counts by roughly 10-20 %,
# which errs on the safe side for model context limits. The count is
# additive over whitespace: count(a + " " + b) == count(a) + count(b).
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_RUN_RE = re.compile(rf"(?P<letters>[^\W\d{_CJK}]+)|(?P<digits>\d+)|\S")
_CACHE_LIMIT = 200_000


def _word_token_starts(word: str) -> Iterator[int]:
    """Offsets in ``word`` where each of its tokens begins."""
    for match in _RUN_RE.finditer(word):
        start, end = match.span()
        kind = match.lastgroup
        if kind == "letters" and end - start > 7:
            yield from range(start, end, 4)
        elif kind == "digits":
            yield from range(start, end, 3)
        else:
            yield start


def _word_tokens(word: str) -> int:
    total = 0
    for match in _RUN_RE.finditer(word):
        length = match.end() - match.start()
        kind = match.lastgroup
        if kind == "letters":
            total += 1 if length <= 7 else -(-length // 4)
        elif kind == "digits":
            total += -(-length // 3)
        else:
            total += 1
    return total


class _TokenCache(dict[str, int]):
    """word -> token count; lookups run at C speed via ``map``."""

    def __missing__(self, word: str) -> int:
        if len(self) >= _CACHE_LIMIT:  # bound memory on huge vocabularies
            self.clear()
        value = _word_tokens(word)
        if len(word) <= 64:  # don't pin huge "words" (base64 blobs) in memory
            self[word] = value
        return value


_TOKENS = _TokenCache()


def count_tokens(text: str) -> int:
    """Approximate BPE token count of ``text`` (see the comment above)."""
    return sum(map(_TOKENS.__getitem__, text.split()))


# ---------------------------------------------------------------------------
# Splitting into units (sentences, lines, word runs)
# ---------------------------------------------------------------------------

_PARAGRAPH_RE = re.compile(r"\n[ \t]*\n\s*")
# Sentence ends: ".", "!", "?" or an ellipsis (optionally followed by a closing
# quote/bracket) then whitespace and no lowercase letter or digit (so
# "e.g. the" and "c. 280" stay whole); CJK full stops; and newlines that start a Markdown
# heading or list item. The named group is the separator.
_SENTENCE_END_RE = re.compile(
    # The leading lookahead lets the regex engine skip ahead by character
    # class instead of trying each branch at every position (2x faster).
    r"(?=[.!?\u2026\u3002\uff01\uff1f\n])"
    r"(?:[.!?\u2026][\"'\u201d\u2019)\]]?(?P<ws>\s+)(?![\sa-z0-9])"
    r"|[\u3002\uff01\uff1f](?P<cjk>\s*)"
    r"|(?P<nl>\n[ \t]*)(?=(?:#{1,6}|[-*+\u2022]|\d{1,3}[.)])[ \t]))"
)
_LINE_SPLIT_RE = re.compile(r"(\n[ \t]*)")


class _Unit(NamedTuple):
    """An indivisible piece of text as the packer sees it."""

    sep: str  # whitespace to put before it when it is not first in a chunk
    text: str
    tokens: int
    page: int | None
    # True for the 2nd+ piece of a word cut between tokens: it is never packed
    # after other text, so token counts stay additive within a chunk.
    word_continuation: bool = False


# tuple.__new__ skips NamedTuple's Python-level __new__: about 5x faster,
# which matters when a file has millions of short lines.
_new_unit = tuple.__new__


def _separator(whitespace: str) -> str:
    # Keep line structure (and indentation, for JSON/code), squash the rest.
    newline = whitespace.rfind("\n")
    return whitespace[newline:] if newline >= 0 else (" " if whitespace else "")


def _split_long_line(line: str, sep: str, page: int | None, max_tokens: int) -> list[_Unit]:
    """Cut a line (no newlines) into units of at most ``max_tokens`` tokens.

    Callers pass the chunk budget minus the overlap, so that a piece plus
    the overlap carried from the previous piece still fits in a chunk.

    Cuts between words (runs of spaces become one space); a single word
    longer than the budget (a URL, base64, minified JSON) is cut between
    tokens so that rejoining the pieces restores it exactly.
    """
    words = line.split()
    prefix = list(accumulate(map(_TOKENS.__getitem__, words)))  # C-speed sums
    units: list[_Unit] = []
    first = 0
    done = 0  # tokens before words[first]
    while first < len(words):
        # Largest `last` such that words[first:last] fits in the budget.
        last = bisect_right(prefix, done + max_tokens, first)
        if last > first:
            text = " ".join(words[first:last])
            units.append(_Unit(sep if not units else " ", text, prefix[last - 1] - done, page))
        else:
            # words[first] alone is over budget: cut it every max_tokens tokens.
            word = words[first]
            cuts = list(islice(_word_token_starts(word), 0, None, max_tokens))[1:]
            bounds = [0, *cuts, len(word)]
            for index in range(len(bounds) - 1):
                piece = word[bounds[index] : bounds[index + 1]]
                units.append(
                    _Unit(
                        sep if not units else ("" if index else " "),
                        piece,
                        _word_tokens(piece),
                        page,
                        word_continuation=index > 0,
                    )
                )
            last = first + 1
        done = prefix[last - 1]
        first = last
    return units


class _Limits(NamedTuple):
    max_tokens: int  # hard cap per chunk
    piece_tokens: int  # cap for pieces of an over-long line: max - overlap
    group_tokens: int  # cap for groups of short lines (see _split_long_sentence)


def _paragraph_units(paragraph: str, page: int | None, limits: _Limits) -> list[_Unit]:
    """Sentences of a paragraph; over-long ones are split by lines, then words."""
    max_tokens = limits.max_tokens
    units: list[_Unit] = []
    begin = 0
    sep = ""
    get = _TOKENS.__getitem__
    ends = [(m.start(m.lastgroup or 0), m.end()) for m in _SENTENCE_END_RE.finditer(paragraph)]
    ends.append((len(paragraph), len(paragraph)))
    for end, next_begin in ends:
        sentence = paragraph[begin:end]
        begin = next_begin
        tokens = sum(map(get, sentence.split()))  # inlined count_tokens
        if not tokens:
            continue
        if tokens <= max_tokens:
            units.append(_new_unit(_Unit, (sep, sentence, tokens, page, False)))
        else:
            units.extend(_split_long_sentence(sentence, sep, page, limits))
        sep = _separator(paragraph[end:next_begin])
    return units


def _split_long_sentence(sentence: str, sep: str, page: int | None, limits: _Limits) -> list[_Unit]:
    """Split an over-long sentence at line breaks (then words).

    Consecutive short lines (CSV rows, log lines, JSON) are grouped into
    units of up to ``group_tokens`` so millions of tiny lines do not mean
    millions of units; groups stay small enough to serve as overlap.
    """
    max_tokens, piece_tokens, group_tokens = limits
    units: list[_Unit] = []
    get = _TOKENS.__getitem__
    lines = _LINE_SPLIT_RE.split(sentence)
    group: list[str] = []  # line texts interleaved with their separators
    group_sep = sep
    group_size = 0

    def flush_group() -> None:
        if group:
            units.append(_new_unit(_Unit, (group_sep, "".join(group), group_size, page, False)))

    # re.split with one capture group alternates line, separator, line, ...
    for index in range(0, len(lines), 2):
        line = lines[index].rstrip()  # the split already ate leading blanks
        if not line:
            continue
        # The captured "\n[ \t]*" is already a proper separator.
        line_sep = lines[index - 1] if (units or group) else sep
        tokens = sum(map(get, line.split()))
        if group and group_size + tokens <= group_tokens:
            group.append(line_sep)
            group.append(line)
            group_size += tokens
            continue
        flush_group()
        group, group_sep, group_size = [], line_sep, 0
        if tokens <= max_tokens:
            group.append(line)
            group_size = tokens
        else:
            units.extend(_split_long_line(line, line_sep, page, piece_tokens))
    flush_group()
    return units


def _tail(unit: _Unit, budget: int) -> _Unit | None:
    """The last whole words of a unit worth at most ``budget`` tokens."""
    words = unit.text.split()
    used = 0
    count = 0
    for word in reversed(words):
        tokens = _TOKENS[word]
        if used + tokens > budget:
            break
        used += tokens
        count += 1
    if not count:
        return None
    # rsplit keeps the original whitespace (newlines) inside the tail.
    head = unit.text.rsplit(None, count)[0] if count < len(words) else ""
    return _new_unit(_Unit, ("", unit.text[len(head) :].lstrip(), used, unit.page, False))


# ---------------------------------------------------------------------------
# Packing
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ChunkDraft:
    """A chunk ready for embedding; ``pages`` is [] for unpaged documents."""

    ordinal: int
    text: str
    pages: list[int]
    tokens: int


class _Packer:
    """Greedy packer that carries an overlap from one chunk into the next."""

    def __init__(self, max_tokens: int, overlap_tokens: int) -> None:
        self.max_tokens = max_tokens
        self.overlap_tokens = overlap_tokens
        self.chunks: list[ChunkDraft] = []
        self.current: list[_Unit] = []
        self.current_tokens = 0
        self.has_new = False  # False while `current` holds only overlap

    def start_paragraph(self, paragraph_tokens: int) -> None:
        # Prefer to break at a paragraph boundary when the whole next
        # paragraph fits in a fresh chunk and this one is reasonably full.
        if (
            self.has_new
            and self.current_tokens + paragraph_tokens > self.max_tokens
            and paragraph_tokens <= self.max_tokens
            and self.current_tokens >= self.max_tokens // 2
        ):
            self.flush()
            self._trim_overlap(paragraph_tokens)

    def start_page(self) -> None:
        # Every page starts a new chunk, without overlap: a citation then names exactly the page that says
        # it, and the file viewer opens there. Short pages make short chunks; that is the price.
        if self.has_new:
            self._emit()
        self.current, self.current_tokens, self.has_new = [], 0, False

    def add(self, unit: _Unit) -> None:
        if unit.word_continuation:
            # Start a fresh chunk with no overlap: see _Unit.word_continuation.
            if self.has_new:
                self._emit()
            self.current, self.current_tokens, self.has_new = [], 0, False
        if self.current_tokens + unit.tokens > self.max_tokens:
            if self.has_new:
                self.flush()
            self._trim_overlap(unit.tokens)
        self.current.append(unit)
        self.current_tokens += unit.tokens
        self.has_new = True

    def finish(self) -> list[ChunkDraft]:
        if self.has_new:
            self._emit()
        return self.chunks

    def flush(self) -> None:
        self._emit()
        self.current = self._overlap()
        self.current_tokens = sum(u.tokens for u in self.current)
        self.has_new = False

    def _trim_overlap(self, incoming: int) -> None:
        # Drop overlap from the front until the incoming text fits.
        drop = 0
        while drop < len(self.current) and self.current_tokens + incoming > self.max_tokens:
            self.current_tokens -= self.current[drop].tokens
            drop += 1
        if drop:
            del self.current[:drop]

    def _overlap(self) -> list[_Unit]:
        budget = self.overlap_tokens
        taken: list[_Unit] = []
        for unit in reversed(self.current):
            if unit.tokens > budget:
                if not taken:  # last sentence too long: take its last words
                    tail = _tail(unit, budget)
                    if tail is not None:
                        taken.append(tail)
                break
            taken.append(unit)
            budget -= unit.tokens
        taken.reverse()
        return taken

    def _emit(self) -> None:
        units = self.current
        # One join per chunk keeps the whole run linear in the text size.
        text = "".join([units[0].text, *(u.sep + u.text for u in units[1:])])
        pages = sorted({u.page for u in units if u.page is not None})
        # Counts are additive across whitespace, so no need to recount.
        tokens = sum(u.tokens for u in units)
        self.chunks.append(ChunkDraft(ordinal=len(self.chunks), text=text, pages=pages, tokens=tokens))


def chunk_document(
    doc: ParsedDocument,
    *,
    max_tokens: int = 256,
    overlap_tokens: int = 32,
) -> list[ChunkDraft]:
    """Split ``doc`` into chunks of at most ``max_tokens`` (approximate) tokens.

    Paragraphs are kept whole where possible, then sentences; over-long
    sentences are split at line breaks, then between words (and, for a
    single enormous "word", between tokens). Each chunk after the first
    starts with about ``overlap_tokens`` tokens from the end of the previous
    chunk, cut at a sentence boundary (or word boundary if the last sentence
    is longer than the overlap); the overlap is shortened when it would push
    a chunk over ``max_tokens``.

    A new page always starts a new chunk (without overlap), so a chunk of a
    paged document cites exactly one page: ``pages`` is ``[n]``.
    """
    if max_tokens < 1:
        raise ValueError("max_tokens must be at least 1")
    if not 0 <= overlap_tokens < max_tokens:
        raise ValueError("overlap_tokens must be >= 0 and smaller than max_tokens")

    packer = _Packer(max_tokens, overlap_tokens)
    limits = _Limits(
        max_tokens=max_tokens,
        piece_tokens=max_tokens - overlap_tokens,
        # Short lines of an over-long sentence are grouped up to this size; as
        # groups are no bigger than the overlap, overlap keeps line granularity.
        group_tokens=max(1, overlap_tokens or max_tokens // 8),
    )
    heading: list[_Unit] = []  # a Markdown heading waiting for its section
    for page in doc.pages:
        if page.number is not None and not heading:
            packer.start_page()
        for paragraph in _PARAGRAPH_RE.split(page.text):
            paragraph = paragraph.strip()
            if not paragraph:
                continue
            units = _paragraph_units(paragraph, page.number, limits)
            if not units:
                continue
            # Paragraphs (and pages) are separated by a blank line.
            units[0] = units[0]._replace(sep="\n\n")
            if _HEADING_RE.match(paragraph):
                # Glue headings to the following paragraph so a chunk never
                # ends with a dangling heading.
                heading.extend(units)
                continue
            _add_paragraph(packer, heading + units)
            heading = []
    if heading:
        _add_paragraph(packer, heading)
    return packer.finish()


_HEADING_RE = re.compile(r"#{1,6}[ \t][^\n]*\Z")


def _add_paragraph(packer: _Packer, units: list[_Unit]) -> None:
    packer.start_paragraph(sum(u.tokens for u in units))
    for unit in units:
        packer.add(unit)
