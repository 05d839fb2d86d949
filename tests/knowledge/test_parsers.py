"""Tests for assistant_chat.knowledge.parsers (no Django needed)."""

from __future__ import annotations

import io
import json
import random
import subprocess
import sys
import zipfile
from pathlib import Path

import docx
import pytest
from docx.enum.text import WD_BREAK
from docx.oxml import OxmlElement
from pypdf import PdfReader, PdfWriter

from assistant_chat.knowledge.demo_documents import write_docx, write_pdf
from assistant_chat.knowledge.parsers import (
    SUPPORTED_EXTENSIONS,
    Page,
    ParsedDocument,
    ParseError,
    file_kind,
    parse_document,
)

SUPPORTED_LIST = ".docx, .json, .md, .pdf, .txt"


# --------------------------------------------------------------------------
# file_kind
# --------------------------------------------------------------------------


def test_supported_extensions_map_to_reference_types() -> None:
    assert SUPPORTED_EXTENSIONS == {
        ".txt": "text",
        ".md": "markdown",
        ".json": "json",
        ".pdf": "pdf",
        ".docx": "doc_x",
    }


@pytest.mark.parametrize(
    ("filename", "kind"),
    [
        ("notes.txt", "text"),
        ("README.md", "markdown"),
        ("data.json", "json"),
        ("paper.pdf", "pdf"),
        ("letter.docx", "doc_x"),
        ("REPORT.PDF", "pdf"),
        ("Notes.Md", "markdown"),
        ("archive.2024.json", "json"),
        ("folder/sub/file.TXT", "text"),
        ("C:\\Users\\me\\file.docx", "doc_x"),
    ],
)
def test_file_kind(filename: str, kind: str) -> None:
    assert file_kind(filename) == kind


def test_file_kind_unsupported_message() -> None:
    with pytest.raises(ParseError) as info:
        file_kind("setup.exe")
    assert str(info.value) == f'Unsupported file type ".exe": supported types are {SUPPORTED_LIST}'


@pytest.mark.parametrize("filename", ["setup.EXE", "old.doc", "archive.tar.gz", "Makefile", "report.pdf.exe"])
def test_file_kind_rejects_unsupported(filename: str) -> None:
    with pytest.raises(ParseError, match="supported types are"):
        file_kind(filename)


def test_parse_error_is_value_error() -> None:
    assert issubclass(ParseError, ValueError)


def test_unsupported_extension_in_parse_document() -> None:
    with pytest.raises(ParseError, match=r'Unsupported file type "\.exe"'):
        parse_document("tool.exe", b"MZ\x90\x00")


# --------------------------------------------------------------------------
# Plain text, Markdown, JSON
# --------------------------------------------------------------------------


@pytest.mark.parametrize(("filename", "kind"), [("a.txt", "text"), ("a.md", "markdown")])
def test_text_formats_single_unnumbered_page(filename: str, kind: str) -> None:
    doc = parse_document(filename, "Hello wörld.\n\nSecond paragraph.".encode())
    assert doc == ParsedDocument(kind=kind, pages=[Page(number=None, text="Hello wörld.\n\nSecond paragraph.")])


def test_markdown_kept_verbatim() -> None:
    source = "# Title\n\n- one\n- two\n\n```python\nprint('x')\n```"
    assert parse_document("x.md", source.encode()).pages[0].text == source


def test_utf8_bom_is_accepted_and_dropped() -> None:
    doc = parse_document("bom.txt", b"\xef\xbb\xbfHello")
    assert doc.pages[0].text == "Hello"


def test_text_normalisation() -> None:
    raw = b"a\r\nb\rc\x00d\n\n\n\n\ne\n   \n\t\n\nf\n"
    assert parse_document("n.txt", raw).pages[0].text == "a\nb\ncd\n\ne\n\nf"


@pytest.mark.parametrize("filename", ["bad.txt", "bad.md", "bad.json"])
@pytest.mark.parametrize("data", [b"caf\xe9", b"\xff\xfeh\x00i\x00", b"ok \xc3\x28 then"])
def test_invalid_utf8_rejected(filename: str, data: bytes) -> None:
    with pytest.raises(ParseError) as info:
        parse_document(filename, data)
    assert str(info.value) == "The file is not valid UTF-8 text"


@pytest.mark.parametrize("filename", ["e.txt", "e.md", "e.json", "e.pdf", "e.docx"])
def test_empty_file(filename: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_document(filename, b"")
    assert str(info.value) == "The file is empty"


@pytest.mark.parametrize("filename", ["w.txt", "w.md", "w.json"])
@pytest.mark.parametrize("data", [b"   \n\n\t  \r\n", b"\xef\xbb\xbf", b"\x00\x00"])
def test_whitespace_only_text_is_empty(filename: str, data: bytes) -> None:
    with pytest.raises(ParseError, match="^The file is empty$"):
        parse_document(filename, data)


@pytest.mark.parametrize(
    "payload",
    [
        {"name": "lighthouse", "height_m": 52.5, "tags": ["coast", "beacon"]},
        [1, 2, {"nested": None}],
        "just a string",
    ],
)
@pytest.mark.parametrize("indent", [None, 2])
def test_json_kept_as_is(payload: object, indent: int | None) -> None:
    text = json.dumps(payload, indent=indent)
    doc = parse_document("data.json", text.encode())
    assert doc.kind == "json"
    assert doc.pages == [Page(number=None, text=text)]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('{"a": 1,}', 1),
        ('{\n  "a": 1,\n  "b": [1, 2,,]\n}', 3),
        ("{\n\n\n\n  'single': 'quotes'\n}", 5),
        ('{"unterminated": "str', 1),
        ("[1, 2]\n[3]", 2),
        ('{\r\n  "a": 1,\r\n  ,\r\n}', 3),
    ],
)
def test_invalid_json_reports_line(text: str, line: int) -> None:
    with pytest.raises(ParseError) as info:
        parse_document("broken.json", text.encode())
    message = str(info.value)
    assert message.startswith("The JSON file is not valid JSON: ")
    assert message.endswith(f"(line {line})")


# --------------------------------------------------------------------------
# PDF
# --------------------------------------------------------------------------

PDF_PAGES = [
    "Alpha page talks about glaciers and fjords.",
    "Beta page talks about volcanoes and basalt.",
    "Gamma page talks about deserts and dunes.",
]


def test_pdf_pages_numbered_from_one() -> None:
    doc = parse_document("atlas.pdf", write_pdf(PDF_PAGES))
    assert doc.kind == "pdf"
    assert [page.number for page in doc.pages] == [1, 2, 3]
    for page, expected in zip(doc.pages, PDF_PAGES, strict=True):
        assert page.text == expected


def test_pdf_progress_called_per_page() -> None:
    seen: list[float] = []
    parse_document("atlas.pdf", write_pdf(PDF_PAGES), progress=seen.append)
    assert seen == pytest.approx([1 / 3, 2 / 3, 1.0])


@pytest.mark.parametrize("filename", ["a.txt", "a.docx"])
def test_progress_completes_for_other_formats(filename: str) -> None:
    data = write_docx(["Some text."]) if filename.endswith(".docx") else b"Some text."
    seen: list[float] = []
    parse_document(filename, data, progress=seen.append)
    assert seen == [1.0]


def test_pdf_blank_page_keeps_true_numbers() -> None:
    doc = parse_document("gap.pdf", write_pdf(["First page.", "", "Third page."]))
    assert [(page.number, page.text) for page in doc.pages] == [(1, "First page."), (3, "Third page.")]


def test_pdf_without_text_rejected() -> None:
    with pytest.raises(ParseError) as info:
        parse_document("scan.pdf", write_pdf(["", "  "]))
    assert str(info.value) == "The PDF has no extractable text (scanned PDFs are not supported)"


def _random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.mark.parametrize(
    "data",
    [
        b"%PDF-1.4 garbage",
        b"%PDF-1.7\n%%EOF",
        b"this is plain text, not a PDF at all",
        _random_bytes(4096, seed=1),
        b"%PDF-1.4\n" + _random_bytes(4096, seed=2),
        b"\x89PNG\r\n\x1a\n" + _random_bytes(512, seed=3),
    ],
    ids=["header-garbage", "header-eof", "plain-text", "random", "header-random", "png"],
)
def test_corrupt_pdf(data: bytes) -> None:
    with pytest.raises(ParseError) as info:
        parse_document("broken.pdf", data)
    message = str(info.value)
    assert message.startswith("The PDF is corrupt or not a PDF: ")
    reason = message.removeprefix("The PDF is corrupt or not a PDF: ")
    assert reason and len(reason) <= 160


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.99])
def test_truncated_pdf(fraction: float) -> None:
    data = write_pdf(PDF_PAGES)
    with pytest.raises(ParseError, match="^The PDF is corrupt or not a PDF: "):
        parse_document("cut.pdf", data[: int(len(data) * fraction)])


def _encrypted_pdf(user_password: str, owner_password: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(write_pdf(PDF_PAGES))))
    writer.encrypt(user_password=user_password, owner_password=owner_password)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_encrypted_pdf_rejected() -> None:
    with pytest.raises(ParseError) as info:
        parse_document("secret.pdf", _encrypted_pdf("s3cret", "owner"))
    assert str(info.value) == "The PDF is encrypted"


def test_pdf_with_only_owner_password_is_readable() -> None:
    # Empty user password: viewers open it without asking, so should we.
    doc = parse_document("restricted.pdf", _encrypted_pdf("", "owner"))
    assert [page.number for page in doc.pages] == [1, 2, 3]
    assert "volcanoes" in doc.pages[1].text


# --------------------------------------------------------------------------
# DOCX
# --------------------------------------------------------------------------


def _save(document: object) -> bytes:
    buffer = io.BytesIO()
    document.save(buffer)  # type: ignore[attr-defined]
    return buffer.getvalue()


def test_docx_page_breaks_number_pages() -> None:
    data = write_docx(["Intro paragraph.\n\nMore intro.", "Second page text.", "Third page text."])
    doc = parse_document("book.docx", data)
    assert doc.kind == "doc_x"
    assert doc.pages == [
        Page(number=1, text="Intro paragraph.\n\nMore intro."),
        Page(number=2, text="Second page text."),
        Page(number=3, text="Third page text."),
    ]


def test_docx_without_breaks_is_page_one() -> None:
    doc = parse_document("one.docx", write_docx(["Only page.\n\nStill only page."]))
    assert [page.number for page in doc.pages] == [1]


def test_docx_blank_page_keeps_numbering() -> None:
    doc = parse_document("gap.docx", write_docx(["One.", "", "Three."]))
    assert [(page.number, page.text) for page in doc.pages] == [(1, "One."), (3, "Three.")]


def test_docx_break_inside_run_splits_paragraph() -> None:
    document = docx.Document()
    paragraph = document.add_paragraph("Before the break ")
    paragraph.add_run("still before").add_break(WD_BREAK.PAGE)
    paragraph.add_run("after the break")
    doc = parse_document("mid.docx", _save(document))
    assert [(p.number, p.text) for p in doc.pages] == [(1, "Before the break still before"), (2, "after the break")]


def test_docx_page_break_before_and_rendered_breaks() -> None:
    document = docx.Document()
    document.add_paragraph("Page one.")
    forced = document.add_paragraph("Page two via pageBreakBefore.")
    forced.paragraph_format.page_break_before = True
    # lastRenderedPageBreak is a layout cache, not a real break: ignored.
    run = document.add_paragraph("Still page two.").runs[0]
    run._r.insert(0, OxmlElement("w:lastRenderedPageBreak"))
    # Line breaks (not page breaks) stay inside the page.
    document.add_paragraph().add_run("line one").add_break(WD_BREAK.LINE)
    doc = parse_document("pbb.docx", _save(document))
    assert [(p.number, p.text) for p in doc.pages] == [
        (1, "Page one."),
        (2, "Page two via pageBreakBefore.\n\nStill page two.\n\nline one"),
    ]


def test_docx_page_break_before_from_style() -> None:
    document = docx.Document()
    document.styles["Heading 1"].paragraph_format.page_break_before = True
    document.add_heading("Chapter One", level=1)  # first content: no empty page
    document.add_paragraph("Body one.")
    document.add_heading("Chapter Two", level=1)
    document.add_paragraph("Body two.")
    doc = parse_document("chapters.docx", _save(document))
    assert [(p.number, p.text) for p in doc.pages] == [
        (1, "Chapter One\n\nBody one."),
        (2, "Chapter Two\n\nBody two."),
    ]


def test_docx_tables_in_document_order() -> None:
    document = docx.Document()
    document.add_paragraph("Before table.")
    table = document.add_table(rows=2, cols=3)
    for r, row in enumerate([["Port", "Light", "Range"], ["Brest", "white", "20 nm"]]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    document.add_paragraph("After table.")
    doc = parse_document("table.docx", _save(document))
    assert doc.pages == [
        Page(number=1, text="Before table.\n\nPort | Light | Range\nBrest | white | 20 nm\n\nAfter table.")
    ]


def test_docx_text_is_normalised() -> None:
    document = docx.Document()
    document.add_paragraph("tab\there")
    for _ in range(3):
        document.add_paragraph("")
    document.add_paragraph("end")
    doc = parse_document("norm.docx", _save(document))
    assert doc.pages[0].text == "tab\there\n\nend"


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "data",
    [
        b"not a zip file",
        _random_bytes(2048, seed=4),
        _zip({"hello.txt": "hi"}),
        write_docx(["Some text."])[:1500],
    ],
    ids=["text", "random", "zip-without-docx-parts", "truncated"],
)
def test_corrupt_docx(data: bytes) -> None:
    with pytest.raises(ParseError) as info:
        parse_document("broken.docx", data)
    assert str(info.value) == "The DOCX file is corrupt or not a DOCX document"


def test_docx_without_text() -> None:
    with pytest.raises(ParseError, match="contains no text"):
        parse_document("blank.docx", _save(docx.Document()))


def test_parsed_document_text_joins_pages() -> None:
    doc = parse_document("atlas.pdf", write_pdf(PDF_PAGES))
    assert doc.text == "\n\n".join(PDF_PAGES)


def test_json_with_huge_integer_is_valid() -> None:
    # Valid JSON even though Python's int() refuses more than 4300 digits.
    text = "[" + "7" * 5000 + "]"
    assert parse_document("big.json", text.encode()).pages[0].text == text


def test_modules_do_not_import_django() -> None:
    code = (
        "import sys\n"
        "import assistant_chat.knowledge.parsers, assistant_chat.knowledge.chunking\n"
        "import assistant_chat.knowledge.demo_documents\n"
        "assert not any(m == 'django' or m.startswith('django.') for m in sys.modules), 'django imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
