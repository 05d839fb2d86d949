"""Parse uploaded file bytes into plain text pages.

Pipeline position: ingestion step 2 (upload bytes -> **parse** -> chunk -> index).
This module is pure Python and imports nothing from Django, so it can be
tested and reused without settings.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "Page",
    "ParseError",
    "ParseLimits",
    "ParsedDocument",
    "file_kind",
    "parse_document",
]

# Extension -> kind. The kind doubles as the Pinecone reference type.
SUPPORTED_EXTENSIONS: dict[str, str] = {
    ".txt": "text",
    ".md": "markdown",
    ".json": "json",
    ".pdf": "pdf",
    ".docx": "doc_x",
}

# Keep library error strings short: they end up in user-facing messages.
_MAX_REASON_CHARS = 160


class ParseError(ValueError):
    """A file could not be turned into text; ``str(exc)`` is safe to show users."""


@dataclass(frozen=True)
class Page:
    """One page of text; ``number`` is 1-based for paged formats, else None."""

    number: int | None
    text: str


@dataclass(frozen=True)
class ParsedDocument:
    """The text of an uploaded file, split into pages."""

    kind: str
    pages: list[Page]

    @property
    def text(self) -> str:
        """All pages joined by blank lines (handy for previews and tests)."""
        return "\n\n".join(page.text for page in self.pages)


ProgressCallback = Callable[[float], None]


@dataclass(frozen=True)
class ParseLimits:
    """Bounds on what one untrusted file may cost to parse. Each message that refuses a file names the setting
    that raises the bound (settings.py reads them from the environment; `knowledge.sandbox` enforces time and
    memory, which only a separate process can)."""

    max_pages: int = 2000  # PARSE_MAX_PAGES
    max_text_chars: int = 10_000_000  # PARSE_MAX_TEXT_CHARS
    max_unpacked_bytes: int = 100 * 1024 * 1024  # PARSE_MAX_UNPACKED_BYTES: a DOCX's zip members, inflated
    max_compression_ratio: int = 100  # PARSE_MAX_COMPRESSION_RATIO: per zip member over 1 MB inflated
    max_zip_members: int = 10_000


_NO_LIMITS = ParseLimits(
    max_pages=10**9,
    max_text_chars=10**12,
    max_unpacked_bytes=10**15,
    max_compression_ratio=10**9,
    max_zip_members=10**9,
)


def _mb(size: float) -> str:
    return f"{size / 1048576:,.1f} MB"


class _TextBudget:
    """Counts extracted characters against `max_text_chars`, refusing the file as soon as it passes."""

    def __init__(self, limits: ParseLimits) -> None:
        self.limit = limits.max_text_chars
        self.used = 0

    def take(self, text: str) -> str:
        self.used += len(text)
        if self.used > self.limit:
            raise ParseError(
                f"The file holds more than {self.limit:,} characters of text, the limit (PARSE_MAX_TEXT_CHARS)"
            )
        return text


def file_kind(filename: str) -> str:
    """Return the kind for ``filename``'s extension (case-insensitive)."""
    # Only the last suffix counts: "report.pdf.exe" is an .exe.
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    dot = name.rfind(".")
    ext = name[dot:].lower() if dot >= 0 else ""
    kind = SUPPORTED_EXTENSIONS.get(ext)
    if kind is None:
        supported = ", ".join(sorted(SUPPORTED_EXTENSIONS))
        shown = f'"{ext}"' if ext else "without an extension"
        raise ParseError(f"Unsupported file type {shown}: supported types are {supported}")
    return kind


def parse_document(
    filename: str,
    data: bytes,
    progress: ProgressCallback | None = None,
    limits: ParseLimits | None = None,
) -> ParsedDocument:
    """Parse ``data`` according to ``filename``'s extension.

    ``progress`` receives fractions in (0, 1]: once per page for PDFs, once
    (1.0) for the other formats. Raises :class:`ParseError` on any failure,
    including a file over one of ``limits`` (none when not given: callers with
    untrusted files go through ``knowledge.sandbox.parse_contained``).
    """
    kind = file_kind(filename)
    if not data:
        raise ParseError("The file is empty")
    limits = limits or _NO_LIMITS
    budget = _TextBudget(limits)

    if kind == "pdf":
        pages = _parse_pdf(data, progress, limits, budget)
    elif kind == "doc_x":
        pages = _parse_docx(data, limits, budget)
    else:
        decoded = _decode_utf8(data)
        text = budget.take(normalize_text(decoded))
        if not text.strip():
            raise ParseError("The file is empty")
        if kind == "json":
            # Validate before blank lines are collapsed so the reported line
            # number matches the user's file; the text itself is kept as-is.
            _validate_json(_NEWLINES_RE.sub("\n", decoded))
        pages = [Page(number=None, text=text)]

    if progress is not None and kind != "pdf":  # the PDF loop already reported 1.0
        progress(1.0)
    return ParsedDocument(kind=kind, pages=pages)


# --------------------------------------------------------------------------
# Text normalisation
# --------------------------------------------------------------------------

_NEWLINES_RE = re.compile(r"\r\n?|[\u2028\u2029\x0b\x0c\x85]")
_WS_ONLY_LINE_RE = re.compile(r"^[ \t]+$", re.MULTILINE)
# Three or more newlines = two or more blank lines: squeeze to one blank line,
# which is what the chunker treats as a paragraph break.
_BLANK_RUN_RE = re.compile(r"\n{3,}")


def normalize_text(text: str) -> str:
    """Strip NULs, unify newlines to ``\\n`` and collapse runs of blank lines."""
    text = text.replace("\x00", "")
    text = _NEWLINES_RE.sub("\n", text)
    # Whitespace-only lines count as blank so they collapse too.
    text = _WS_ONLY_LINE_RE.sub("", text)
    text = _BLANK_RUN_RE.sub("\n\n", text)
    return text.strip("\n")


def _decode_utf8(data: bytes) -> str:
    try:
        # utf-8-sig silently drops a leading BOM, which editors on Windows add.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ParseError("The file is not valid UTF-8 text") from exc


def _validate_json(text: str) -> None:
    try:
        # Syntax check only: keep numbers as strings so huge integers (valid
        # JSON, but over Python's int-conversion limit) don't fail.
        json.loads(text, parse_int=str, parse_float=str)
    except json.JSONDecodeError as exc:
        raise ParseError(f"The JSON file is not valid JSON: {exc.msg} (line {exc.lineno})") from exc
    except RecursionError as exc:  # absurdly deep nesting
        raise ParseError("The JSON file is not valid JSON: nesting is too deep") from exc
    except ValueError as exc:  # defensive: any other decoder complaint
        raise ParseError(f"The JSON file is not valid JSON: {_short_reason(exc)}") from exc


# pypdf messages that mean little to users, reworded.
_FRIENDLY_PDF_REASONS: dict[str, str] = {
    "Stream has ended unexpectedly": "the file is truncated or damaged",
    "startxref not found": "the file is truncated or damaged (no cross-reference table)",
    "EOF marker not found": "the file is truncated (no end-of-file marker)",
}


def _short_reason(exc: BaseException) -> str:
    reason = " ".join(str(exc).split()) or type(exc).__name__
    reason = _FRIENDLY_PDF_REASONS.get(reason, reason)
    if len(reason) > _MAX_REASON_CHARS:
        reason = reason[: _MAX_REASON_CHARS - 3].rstrip() + "..."
    return reason


# --------------------------------------------------------------------------
# PDF
# --------------------------------------------------------------------------


def _parse_pdf(data: bytes, progress: ProgressCallback | None, limits: ParseLimits, budget: _TextBudget) -> list[Page]:
    # Imported lazily: pypdf is only needed for PDFs and is slow-ish to import.
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError

    if b"%PDF-" not in data[:1024]:
        # pypdf would happily "repair" arbitrary bytes; fail early and clearly.
        raise ParseError("The PDF is corrupt or not a PDF: missing %PDF header")

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            # Many PDFs are "encrypted" only with an owner password and open
            # with the empty user password; those are fine to read.
            try:
                opened = reader.decrypt("")
            except Exception as exc:  # wrong password, unsupported cipher, missing crypto lib
                raise ParseError("The PDF is encrypted") from exc
            if not opened:
                raise ParseError("The PDF is encrypted")
        page_objects = reader.pages
        total = len(page_objects)
    except ParseError:
        raise
    except FileNotDecryptedError as exc:
        raise ParseError("The PDF is encrypted") from exc
    except MemoryError:
        raise
    except Exception as exc:  # pypdf raises many types (PdfReadError, KeyError, ...)
        raise ParseError(f"The PDF is corrupt or not a PDF: {_short_reason(exc)}") from exc

    if total == 0:
        raise ParseError("The PDF is corrupt or not a PDF: it has no pages")
    if total > limits.max_pages:
        raise ParseError(f"The PDF has {total:,} pages; the limit is {limits.max_pages:,} pages (PARSE_MAX_PAGES)")

    pages: list[Page] = []
    for index in range(total):
        try:
            raw = page_objects[index].extract_text() or ""
        except FileNotDecryptedError as exc:
            raise ParseError("The PDF is encrypted") from exc
        except MemoryError:
            raise
        except Exception as exc:  # a broken content stream is a corrupt PDF
            raise ParseError(f"The PDF is corrupt or not a PDF: {_short_reason(exc)}") from exc
        text = budget.take(normalize_text(raw))
        # Keep the true page number even if earlier pages were blank so
        # citations point at the page a reader would open.
        if text.strip():
            pages.append(Page(number=index + 1, text=text))
        if progress is not None:
            progress((index + 1) / total)

    if not pages:
        raise ParseError("The PDF has no extractable text (scanned PDFs are not supported)")
    return pages


# --------------------------------------------------------------------------
# DOCX
# --------------------------------------------------------------------------

_W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_MC_NS = "http://schemas.openxmlformats.org/markup-compatibility/2006"


def _w(tag: str) -> str:
    return f"{{{_W_NS}}}{tag}"


_P, _TBL, _TR, _TC, _SDT, _SDT_CONTENT = (_w(t) for t in ("p", "tbl", "tr", "tc", "sdt", "sdtContent"))
_T, _TAB, _BR, _CR, _NB_HYPHEN = (_w(t) for t in ("t", "tab", "br", "cr", "noBreakHyphen"))
_PPR, _PSTYLE, _PAGE_BREAK_BEFORE, _VAL, _TYPE = (_w(t) for t in ("pPr", "pStyle", "pageBreakBefore", "val", "type"))
_MC_FALLBACK = f"{{{_MC_NS}}}Fallback"
_PAGE_BREAK = object()  # sentinel yielded in place of text for a page break


class _PageBuilder:
    """Accumulates paragraphs and cuts pages at explicit page breaks."""

    def __init__(self, budget: _TextBudget | None = None) -> None:
        self.number = 1
        self.paragraphs: list[str] = []
        self.pages: list[Page] = []
        self.budget = budget

    def add(self, paragraph: str) -> None:
        if paragraph.strip():
            self.paragraphs.append(self.budget.take(paragraph) if self.budget else paragraph)

    def has_content(self) -> bool:
        return bool(self.paragraphs)

    def break_page(self) -> None:
        self._flush()
        self.number += 1

    def finish(self) -> list[Page]:
        self._flush()
        return self.pages

    def _flush(self) -> None:
        text = normalize_text("\n\n".join(self.paragraphs))
        # Blank pages are dropped but still advance the numbering.
        if text.strip():
            self.pages.append(Page(number=self.number, text=text))
        self.paragraphs = []


def _check_zip(data: bytes, limits: ParseLimits) -> None:
    """Refuse a decompression bomb before anything inflates it: the members' declared sizes bound what zipfile
    will ever inflate (it stops at the declared size and fails the CRC past it)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise ParseError("The DOCX file is corrupt or not a DOCX document") from exc
    if len(members) > limits.max_zip_members:
        raise ParseError(f"The DOCX file has {len(members):,} parts; the limit is {limits.max_zip_members:,}")
    unpacked = sum(member.file_size for member in members)
    if unpacked > limits.max_unpacked_bytes:
        raise ParseError(
            f"The DOCX file unpacks to {_mb(unpacked)}, over the limit of {_mb(limits.max_unpacked_bytes)} "
            "(PARSE_MAX_UNPACKED_BYTES)"
        )
    for member in members:
        if member.file_size > 1024 * 1024:
            ratio = member.file_size / max(member.compress_size, 1)
            if ratio > limits.max_compression_ratio:
                raise ParseError(
                    f"The DOCX part {member.filename[:80]} is compressed {ratio:,.0f} to 1, over the limit of "
                    f"{limits.max_compression_ratio:,} to 1 (PARSE_MAX_COMPRESSION_RATIO): a decompression bomb"
                )


def _parse_docx(data: bytes, limits: ParseLimits, budget: _TextBudget) -> list[Page]:
    # Lazy import for the same reason as pypdf.
    import docx

    _check_zip(data, limits)
    try:
        document = docx.Document(io.BytesIO(data))
        body = document.element.body
        styles_break = _styles_with_page_break_before(document)
    except MemoryError:
        raise  # a limit, not a corrupt file (the sandbox reports it)
    except Exception as exc:  # BadZipFile, KeyError for missing parts, XMLSyntaxError, ...
        raise ParseError("The DOCX file is corrupt or not a DOCX document") from exc

    builder = _PageBuilder(budget)
    _walk_blocks(body, builder, styles_break)
    pages = builder.finish()
    if not pages:
        raise ParseError("The DOCX document contains no text")
    if len(pages) > limits.max_pages:
        raise ParseError(
            f"The DOCX document has {len(pages):,} pages; the limit is {limits.max_pages:,} pages (PARSE_MAX_PAGES)"
        )
    return pages


def _styles_with_page_break_before(document: Any) -> set[str]:
    """Paragraph style ids whose (inherited) formatting sets pageBreakBefore."""
    result: set[str] = set()
    try:
        styles = list(document.styles)
    except Exception:  # a document without a styles part still has text
        return result
    for style in styles:
        current = style
        seen: set[int] = set()
        # Walk base styles: the property is inherited unless overridden.
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            fmt = getattr(current, "paragraph_format", None)
            value = getattr(fmt, "page_break_before", None) if fmt is not None else None
            if value is not None:
                if value and style.style_id:
                    result.add(style.style_id)
                break
            current = getattr(current, "base_style", None)
    return result


def _walk_blocks(container: Any, builder: _PageBuilder, styles_break: set[str]) -> None:
    """Visit paragraphs and tables of a body/cell in document order."""
    for child in container.iterchildren():
        tag = child.tag
        if tag == _P:
            _add_paragraph(child, builder, styles_break)
        elif tag == _TBL:
            _add_table(child, builder, styles_break)
        elif tag == _SDT:
            # Content controls wrap ordinary blocks.
            content = child.find(_SDT_CONTENT)
            if content is not None:
                _walk_blocks(content, builder, styles_break)


def _has_page_break_before(p: Any, styles_break: set[str]) -> bool:
    ppr = p.find(_PPR)
    if ppr is None:
        return False
    direct = ppr.find(_PAGE_BREAK_BEFORE)
    if direct is not None:
        return _on_off(direct.get(_VAL))
    style = ppr.find(_PSTYLE)
    return style is not None and style.get(_VAL) in styles_break


def _on_off(value: str | None) -> bool:
    # OOXML on/off: absent val means "on".
    return value is None or value.lower() not in {"0", "false", "off"}


def _paragraph_pieces(p: Any) -> Iterator[str | object]:
    """Yield the paragraph's text pieces and _PAGE_BREAK markers in order."""
    for el in p.iter(_T, _TAB, _BR, _CR, _NB_HYPHEN):
        # Skip the legacy copy of text boxes, which duplicates mc:Choice.
        if any(anc.tag == _MC_FALLBACK for anc in el.iterancestors()):
            continue
        tag = el.tag
        if tag == _T:
            yield el.text or ""
        elif tag == _TAB:
            yield "\t"
        elif tag == _NB_HYPHEN:
            yield "-"
        elif tag == _BR and el.get(_TYPE) == "page":
            yield _PAGE_BREAK
        else:  # text-wrapping/column breaks and carriage returns
            yield "\n"


def _add_paragraph(p: Any, builder: _PageBuilder, styles_break: set[str]) -> None:
    # Word ignores pageBreakBefore on a document's very first content.
    if _has_page_break_before(p, styles_break) and (builder.has_content() or builder.pages):
        builder.break_page()
    parts: list[str] = []
    for piece in _paragraph_pieces(p):
        if piece is _PAGE_BREAK:
            builder.add("".join(parts))
            parts = []
            builder.break_page()
        else:
            parts.append(piece)  # type: ignore[arg-type]
    builder.add("".join(parts))


def _add_table(tbl: Any, builder: _PageBuilder, styles_break: set[str]) -> None:
    # One line per row, cells separated by " | ", the whole table one block.
    # A page break inside a cell takes effect after its row, so rows are
    # never torn apart.
    rows: list[str] = []
    for row in tbl.iterchildren(_TR):
        cells: list[str] = []
        breaks = 0
        for cell in row.iterchildren(_TC):
            sub = _PageBuilder()
            _walk_blocks(cell, sub, styles_break)
            cell_pages = sub.finish()
            breaks += sub.number - 1
            cells.append(" ".join(" ".join(pg.text.split()) for pg in cell_pages))
        if any(cells):
            rows.append(" | ".join(cells))
        if breaks:
            builder.add("\n".join(rows))
            rows = []
            for _ in range(breaks):
                builder.break_page()
    builder.add("\n".join(rows))
