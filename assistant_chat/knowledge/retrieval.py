"""Retrieval: the context snippets for a question, under a metadata filter.

Called by the `context` endpoint now and by the chat engine (turns) next. The filter picks files, search.py
ranks their chunks, and each hit grows into a snippet with its neighbouring chunks up to `snippet_size` tokens,
so a snippet reads as a passage and not a fragment. Chunks are ranked by hybrid.py (words and meaning fused). Reads only; imports nothing from the API or providers.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper

from ..models import Assistant, Chunk, File
from ..raw_rows import Converter, column_converters
from .filters import MetadataFilter
from .hybrid import Mode
from .hybrid import search as hybrid_search

DEFAULT_TOP_K = 16
MAX_TOP_K = 64
DEFAULT_SNIPPET_SIZE = 2048
MIN_SNIPPET_SIZE = 512
MAX_SNIPPET_SIZE = 8192
# Neighbouring chunks overlap (chunking.py); take only this much context either side of a hit.
NEIGHBOUR_RADIUS = 3


class Said(Protocol):
    """Anything with a role and content: API chat messages and turn messages alike."""

    @property
    def role(self) -> str: ...

    @property
    def content(self) -> str: ...


def query_from_messages(messages: Sequence[Said]) -> str:
    """The search query for a conversation: the latest user message, with the one before it for context."""
    user_turns = [message.content for message in messages if message.role == "user"]
    return "\n".join(user_turns[-2:]) if user_turns else messages[-1].content


@dataclass
class Snippet:
    file: File
    text: str
    pages: list[int]
    score: float
    ordinals: list[int] = field(default_factory=list)
    tokens: int = 0


def retrieve(
    *,
    assistant: Assistant,
    query: str,
    metadata_filter: MetadataFilter | None = None,
    top_k: int = DEFAULT_TOP_K,
    snippet_size: int = DEFAULT_SNIPPET_SIZE,
    mode: Mode = "hybrid",
) -> list[Snippet]:
    """At most `top_k` snippets, best first, each at most about `snippet_size` tokens, from distinct passages.
    Ranked by meaning and words fused (hybrid.py); `mode` picks one ranking alone (the retrieval benchmark)."""
    allowed: set[int] | None = None
    if metadata_filter is not None:
        allowed = _files_matching(assistant.pk, metadata_filter)
        if not allowed:
            return []
    hits = hybrid_search(
        assistant=assistant,
        query=query,
        file_pks=allowed,
        limit=top_k * 2,  # some hits merge into one snippet with their neighbours
        mode=mode,
    )
    if not hits:
        return []
    files = _AvailableFiles(assistant.pk, {hit.file_pk for hit in hits})
    hits = [hit for hit in hits if hit.file_pk in files]
    if not hits:
        return []
    # Neighbours of the first top_k hits cover nearly every answer; later hits (needed only when earlier ones
    # merged into one snippet) fetch theirs on demand.
    neighbours = _neighbours(hits[:top_k])
    snippets: list[Snippet] = []
    covered: set[tuple[int, int]] = set()
    for index, hit in enumerate(hits):
        if (hit.file_pk, hit.ordinal) in covered:
            continue
        if index >= top_k:
            neighbours.update(_neighbours([hit]))
        snippet = _grow(hit.file_pk, hit.ordinal, hit.text, hit.pages, neighbours, snippet_size)
        covered.update((hit.file_pk, ordinal) for ordinal in snippet[0])
        ordinals, text, pages, tokens = snippet
        snippets.append(
            Snippet(file=files[hit.file_pk], text=text, pages=pages, score=hit.score, ordinals=ordinals, tokens=tokens)
        )
        if len(snippets) >= top_k:
            break
    return snippets


def _column(name: str) -> str:
    return str(File._meta.get_field(name).column)  # type: ignore[union-attr]


def _files_matching(assistant_id: int, metadata_filter: MetadataFilter) -> set[int]:
    """The available files whose metadata the filter accepts. Files often share metadata, so the database groups
    them by metadata text and the filter runs once per distinct text; no File objects are built (both were most of
    the cost of a filtered retrieval over 1,000 files), and the query is raw SQL (compiling it through the ORM cost
    more than running it)."""
    quote = connection.ops.quote_name
    table, metadata, pk = quote(File._meta.db_table), quote(_column("metadata")), quote(_column("id"))
    if connection.vendor == "postgresql":
        text, pks = f"{metadata}::text", f"string_agg({pk}::text, ',')"
    else:
        text, pks = metadata, f"group_concat({pk})"
    sql = (
        f"SELECT {text}, {pks} FROM {table} "  # noqa: S608 (names from the model, values as parameters)
        f"WHERE {quote(_column('assistant'))} = %s AND {quote(_column('status'))} = %s GROUP BY {text}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [assistant_id, File.Status.AVAILABLE.value])
        groups = cursor.fetchall()
    return {
        int(pk)
        for text, joined in groups
        if metadata_filter.matches(json.loads(text) if text is not None else None)
        for pk in joined.split(",")
    }


class _AvailableFiles:
    """The available files among `pks`, read in one raw query; a `File` is built only for a file a snippet
    returns (building 32 model instances through the ORM cost about a millisecond)."""

    def __init__(self, assistant_id: int, pks: set[int]) -> None:
        quote = connection.ops.quote_name
        fields = File._meta.concrete_fields
        sql = (
            f"SELECT {', '.join(quote(_column(f.name)) for f in fields)} FROM {quote(File._meta.db_table)} "  # noqa: S608
            f"WHERE {quote(_column('assistant'))} = %s AND {quote(_column('status'))} = %s "
            f"AND {quote(_column('id'))} IN ({', '.join(['%s'] * len(pks))})"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [assistant_id, File.Status.AVAILABLE.value, *sorted(pks)])
            self._rows = {row[0]: row for row in cursor.fetchall()}
        self._files: dict[int, File] = {}

    def __contains__(self, pk: int) -> bool:
        return pk in self._rows

    def __getitem__(self, pk: int) -> File:
        file = self._files.get(pk)
        if file is None:
            converters = _file_converters()
            values = [convert(value) for convert, value in zip(converters, self._rows[pk], strict=True)]
            file = self._files[pk] = File.from_db(
                connection.alias, [f.attname for f in File._meta.concrete_fields], values
            )
        return file


_converters_by_connection: weakref.WeakKeyDictionary[BaseDatabaseWrapper, list[Converter]] = weakref.WeakKeyDictionary()


def _file_converters() -> list[Converter]:
    """What the ORM does to each column of a File it reads (SQLite's datetime text, JSON text to objects), per
    connection because the converters are bound to it."""
    db = connections[DEFAULT_DB_ALIAS]
    converters = _converters_by_connection.get(db)
    if converters is None:
        converters = column_converters(db, File._meta.concrete_fields)
        _converters_by_connection[db] = converters
    return converters


class _Piece(NamedTuple):
    """The columns of a chunk that growing a snippet reads."""

    ordinal: int
    text: str
    pages: list[int]
    tokens: int


def _neighbours(hits: list) -> dict[tuple[int, int], _Piece]:
    """Every hit's chunk and its neighbours, in one query (raw SQL: building the ORM's OR of one condition per
    hit cost more than running it)."""
    ranges = sorted(
        {(hit.file_pk, max(hit.ordinal - NEIGHBOUR_RADIUS, 0), hit.ordinal + NEIGHBOUR_RADIUS) for hit in hits}
    )
    where = " OR ".join(["(file_id = %s AND ordinal BETWEEN %s AND %s)"] * len(ranges))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT file_id, ordinal, text, pages, tokens FROM {Chunk._meta.db_table} WHERE {where}",  # noqa: S608
            [value for bounds in ranges for value in bounds],
        )
        rows = cursor.fetchall()
    pieces = {}
    for file_id, ordinal, text, pages, tokens in rows:
        if isinstance(pages, str):  # SQLite returns JSON columns as text through a raw cursor
            pages = json.loads(pages)
        pieces[(file_id, ordinal)] = _Piece(ordinal, text, pages or [], tokens)
    return pieces


def _grow(
    file_pk: int, ordinal: int, text: str, pages: list[int], neighbours: dict[tuple[int, int], _Piece], budget: int
) -> tuple[list[int], str, list[int], int]:
    """Extend a hit with following, then preceding chunks while the token budget allows and the pages match."""
    centre = neighbours.get((file_pk, ordinal))
    used = centre.tokens if centre else len(text.split())
    hit_pages = set(pages)
    before: list[_Piece] = []
    after: list[_Piece] = []
    for step in range(1, NEIGHBOUR_RADIUS + 1):
        grew = False
        for side, position in ((after, ordinal + step), (before, ordinal - step)):
            chunk = neighbours.get((file_pk, position))
            # On paged documents stay on the hit's pages, so that a citation names the page that says it.
            if chunk is not None and used + chunk.tokens <= budget and set(chunk.pages or []) <= hit_pages:
                side.append(chunk)
                used += chunk.tokens
                grew = True
        if not grew:
            break
    ordered = [*reversed(before), *([centre] if centre else []), *after]
    if not ordered:
        return [ordinal], text, list(pages), used
    joined = _join_overlapping([chunk.text for chunk in ordered])
    all_pages = sorted({page for chunk in ordered for page in (chunk.pages or [])})
    return [chunk.ordinal for chunk in ordered], joined, all_pages, used


def _join_overlapping(texts: list[str]) -> str:
    """Join consecutive chunks, dropping the overlap chunking repeated at the start of each."""
    result = texts[0]
    for text in texts[1:]:
        overlap = _overlap_length(result, text)
        result = f"{result} {text[overlap:].lstrip()}" if overlap else f"{result}\n{text}"
    return result


def _overlap_length(left: str, right: str, longest: int = 400, probe: int = 16) -> int:
    """Length of the longest suffix of `left` that is a prefix of `right` (at least `probe` characters)."""
    if len(right) < probe:
        return 0
    tail = left[-longest:]
    head = right[:probe]
    start = tail.find(head)
    while start != -1:
        if right.startswith(tail[start:]):
            return len(tail) - start
        start = tail.find(head, start + 1)
    return 0
