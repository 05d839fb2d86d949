"""Retrieval: the context snippets for a question, under a metadata filter.

Called by the `context` endpoint now and by the chat engine (turns) next. The filter picks files, search.py
ranks their chunks, and each hit grows into a snippet with its neighbouring chunks up to `snippet_size` tokens,
so a snippet reads as a passage and not a fragment. Reads only; imports nothing from the API or providers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from django.db.models import Q

from ..models import Assistant, Chunk, File
from .filters import MetadataFilter
from .search import search_chunks

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
) -> list[Snippet]:
    """At most `top_k` snippets, best first, each at most about `snippet_size` tokens, from distinct passages."""
    available = File.objects.filter(assistant=assistant, status=File.Status.AVAILABLE)
    allowed: set[int] | None = None
    if metadata_filter is not None:
        allowed = {file.pk for file in available.only("pk", "metadata") if metadata_filter.matches(file.metadata)}
        if not allowed:
            return []
    hits = search_chunks(
        assistant_id=assistant.pk,
        query=query,
        file_pks=allowed,
        limit=top_k * 2,  # some hits merge into one snippet with their neighbours
    )
    files = available.in_bulk({hit.file_pk for hit in hits})
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


def _neighbours(hits: list) -> dict[tuple[int, int], Chunk]:
    """Every hit's chunk and its neighbours, in one query."""
    wanted: dict[int, set[int]] = {}
    for hit in hits:
        wanted.setdefault(hit.file_pk, set()).update(
            range(max(hit.ordinal - NEIGHBOUR_RADIUS, 0), hit.ordinal + NEIGHBOUR_RADIUS + 1)
        )
    condition = Q()
    for file_pk, ordinals in wanted.items():
        condition |= Q(file_id=file_pk, ordinal__in=sorted(ordinals))
    return {
        (chunk.file_id, chunk.ordinal): chunk
        for chunk in Chunk.objects.filter(condition).only("file_id", "ordinal", "text", "pages", "tokens")
    }


def _grow(
    file_pk: int, ordinal: int, text: str, pages: list[int], neighbours: dict[tuple[int, int], Chunk], budget: int
) -> tuple[list[int], str, list[int], int]:
    """Extend a hit with following, then preceding chunks while the token budget allows and the pages match."""
    centre = neighbours.get((file_pk, ordinal))
    used = centre.tokens if centre else len(text.split())
    hit_pages = set(pages)
    before: list[Chunk] = []
    after: list[Chunk] = []
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
