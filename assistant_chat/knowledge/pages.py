"""The text the file viewer shows: ingestion stores a file's pages as it parsed them (`FilePage` rows), so that
viewing a file never parses the upload again, and the viewer pages through them in bounded windows.

Called by `ingest` (inside the transaction that swaps a file's chunks) and by `selectors` (the viewer's reads).
Imports only the models and the parser's types.
"""

from __future__ import annotations

from ..models import FilePage
from .parsers import ParsedDocument

# Longest segment stored in one row; a longer page becomes several rows with the same page number.
SEGMENT_CHARS = 10_000


def split_segments(text: str, limit: int = SEGMENT_CHARS) -> list[str]:
    """`text` in pieces of at most `limit` characters, cut at a paragraph or line break where one is near."""
    pieces = []
    while len(text) > limit:
        cut = text.rfind("\n\n", limit // 2, limit)
        if cut < 0:
            cut = text.rfind("\n", limit // 2, limit)
        if cut < 0:
            cut = text.rfind(" ", limit // 2, limit)
        if cut < 0:
            cut = limit
        pieces.append(text[:cut])
        text = text[cut:].lstrip("\n")
    pieces.append(text)
    return pieces


def file_pages_replace(*, file_id: int, document: ParsedDocument | None) -> None:
    """Store `document`'s pages as the file's viewer text (none: the file has no viewable text). Called inside
    the caller's transaction."""
    FilePage.objects.filter(file_id=file_id).delete()
    if document is None:
        return
    rows: list[FilePage] = []
    for page in document.pages:
        for segment in split_segments(page.text):
            rows.append(FilePage(file_id=file_id, ordinal=len(rows), number=page.number, text=segment))
    FilePage.objects.bulk_create(rows, batch_size=500)
