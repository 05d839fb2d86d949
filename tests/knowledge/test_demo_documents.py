"""Tests for assistant_chat.knowledge.demo_documents (no Django needed)."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import docx
import pytest
from pypdf import PdfReader

from assistant_chat.knowledge import demo_documents
from assistant_chat.knowledge.chunking import chunk_document
from assistant_chat.knowledge.demo_documents import DemoFile, demo_files, write_docx, write_pdf
from assistant_chat.knowledge.parsers import SUPPORTED_EXTENSIONS, file_kind, parse_document


def _pdf_texts(data: bytes, *, strict: bool = True) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(data), strict=strict).pages]


# --------------------------------------------------------------------------
# write_pdf
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pages",
    [
        ["Only page."],
        ["First page about owls.", "Second page about bats.", "Third page about moths."],
        [f"Page {i} text." for i in range(1, 13)],
    ],
    ids=["one", "three", "twelve"],
)
def test_write_pdf_round_trips_page_by_page(pages: list[str]) -> None:
    data = write_pdf(pages)
    assert data.startswith(b"%PDF-1.4")
    assert data.rstrip().endswith(b"%%EOF")
    assert _pdf_texts(data) == pages


def test_write_pdf_xref_offsets_are_exact() -> None:
    data = write_pdf(["One.", "Two (with parens)."])
    startxref = int(re.search(rb"startxref\s+(\d+)", data).group(1))  # type: ignore[union-attr]
    assert data[startxref:].startswith(b"xref\n0 ")
    count = int(data[startxref:].split(b"\n")[1].split()[1])
    entries = data[startxref:].split(b"\n")[2 : 2 + count]
    assert entries[0] == b"0000000000 65535 f "
    for number, entry in enumerate(entries[1:], start=1):
        assert len(entry) + 1 == 20  # every xref line is exactly 20 bytes
        offset = int(entry[:10])
        assert data[offset:].startswith(b"%d 0 obj" % number)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Parens (like this) and a backslash \\ here.", "Parens (like this) and a backslash \\ here."),
        ("Unbalanced ) and ( parens.", "Unbalanced ) and ( parens."),
        ("Latin-1: café, naïve, Größe, ±5 °C.", "Latin-1: café, naïve, Größe, ±5 °C."),
        ("Typography: “quotes” – dashes — and … ellipsis €.", "Typography: “quotes” – dashes — and … ellipsis €."),
        ("Outside: 日本 and emoji 🙂.", "Outside: ?? and emoji ?."),
        ("Tabs\tand  runs   of spaces collapse.", "Tabs and runs of spaces collapse."),
    ],
)
def test_write_pdf_escaping_and_encoding(text: str, expected: str) -> None:
    assert _pdf_texts(write_pdf([text])) == [expected]


def test_write_pdf_is_seven_bit_clean_after_header() -> None:
    data = write_pdf(["café (x) \\ 日本"])
    body = data.split(b"\n", 2)[2]  # skip header and its binary marker comment
    assert all(byte < 128 for byte in body)


def test_write_pdf_wraps_long_lines_to_page_width() -> None:
    words = [f"word{i}" for i in range(300)]
    data = write_pdf([" ".join(words)])
    lines = _pdf_texts(data)[0].split("\n")
    assert len(lines) > 10
    assert " ".join(lines).split() == words
    # Helvetica 11pt averages ~5.5pt per character over 468pt of width.
    assert max(len(line) for line in lines) < 110


def test_write_pdf_splits_overwide_words() -> None:
    word = "x" * 400
    text = _pdf_texts(write_pdf([f"before {word} after"]))[0]
    assert text.replace("\n", "").replace(" ", "") == f"before{word}after"
    assert len(text.split("\n")) >= 3


def test_write_pdf_drops_text_below_the_bottom_margin() -> None:
    lines = [f"Line {i}" for i in range(200)]
    data = write_pdf(["\n".join(lines)])
    extracted = _pdf_texts(data)
    assert len(extracted) == 1
    kept = extracted[0].split("\n")
    assert kept == lines[: len(kept)]
    assert 40 <= len(kept) < 60


def test_write_pdf_empty_inputs_still_valid() -> None:
    assert _pdf_texts(write_pdf([])) == [""]
    assert _pdf_texts(write_pdf(["", ""])) == ["", ""]


# --------------------------------------------------------------------------
# write_docx
# --------------------------------------------------------------------------


def test_write_docx_paragraphs_and_page_breaks() -> None:
    data = write_docx(["Para one.\n\nPara two.", "Page two para."])
    document = docx.Document(io.BytesIO(data))
    # python-docx renders a page-type w:br as "" in Paragraph.text.
    assert [p.text for p in document.paragraphs] == ["Para one.", "Para two.", "Page two para."]
    breaks = document.element.body.xpath('.//w:br[@w:type="page"]')
    assert len(breaks) == 1
    # The break opens the first paragraph of page two.
    assert breaks[0].getparent().getparent() is document.paragraphs[2]._p


def test_write_docx_round_trips_through_parser() -> None:
    pages = ["Alpha one.\n\nAlpha two.", "Beta one.", "Gamma one.\n\nGamma two."]
    doc = parse_document("x.docx", write_docx(pages))
    assert [(page.number, page.text) for page in doc.pages] == [
        (1, "Alpha one.\n\nAlpha two."),
        (2, "Beta one."),
        (3, "Gamma one.\n\nGamma two."),
    ]


def test_write_docx_tolerates_control_characters() -> None:
    doc = parse_document("x.docx", write_docx(["bad\x00char\x07s and a\nline break"]))
    assert doc.pages[0].text == "badchars and a\nline break"


# --------------------------------------------------------------------------
# The demo knowledge base
# --------------------------------------------------------------------------

EXPECTED = {
    "water_cycle.txt": {"resource": "encyclopedia", "topic": "earth-science", "year": 2021},
    "honeybees.md": {"resource": "encyclopedia", "topic": "biology", "year": 2023},
    "printing_press.pdf": {"resource": "encyclopedia", "topic": "history", "year": 2019},
    "travel_policy.docx": {"resource": "handbook", "topic": "policy", "year": 2024},
    "lighthouses.json": {"resource": "dataset", "topic": "maritime", "year": 2022},
    "mars.md": {"resource": "encyclopedia", "topic": "astronomy", "year": 2020},
}

# A distinctive keyword per document: found in it and in no other.
KEYWORDS = {
    "water_cycle.txt": ["evaporation", "aquifers", "condensation"],
    "honeybees.md": ["waggle", "drones", "propolis"],
    "printing_press.pdf": ["Gutenberg", "incunabula", "Reformation"],
    "travel_policy.docx": ["per diem", "reimbursed", "itinerary"],
    "lighthouses.json": ["Fresnel", "Pharos", "nautical"],
    "mars.md": ["Olympus Mons", "Phobos", "Perseverance"],
}


@pytest.fixture(scope="module")
def parsed() -> dict[str, str]:
    return {demo.name: parse_document(demo.name, demo.data).text for demo in demo_files()}


def test_demo_files_names_and_metadata() -> None:
    files = demo_files()
    assert all(isinstance(demo, DemoFile) for demo in files)
    assert {demo.name: demo.metadata for demo in files} == EXPECTED
    assert {file_kind(demo.name) for demo in files} == set(SUPPORTED_EXTENSIONS.values())


def test_demo_files_are_fresh_objects() -> None:
    first, second = demo_files(), demo_files()
    first[0].metadata["year"] = 1900
    assert second[0].metadata["year"] == 2021


def test_demo_files_constant_is_lazy_and_cached() -> None:
    assert [demo.name for demo in demo_documents.DEMO_FILES] == list(EXPECTED)
    assert demo_documents.DEMO_FILES is demo_documents.DEMO_FILES
    with pytest.raises(AttributeError):
        demo_documents.NOT_A_THING  # noqa: B018


def test_importing_demo_documents_is_cheap() -> None:
    # In a fresh interpreter: importing builds nothing and loads no docx/pypdf.
    code = (
        "import sys\n"
        "import assistant_chat.knowledge.demo_documents as m\n"
        "assert m._demo_cache is None\n"
        "assert 'docx' not in sys.modules and 'pypdf' not in sys.modules\n"
        "assert 'django' not in sys.modules\n"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)


@pytest.mark.parametrize("demo", demo_files(), ids=lambda demo: demo.name)
def test_demo_file_parses_and_chunks(demo: DemoFile) -> None:
    doc = parse_document(demo.name, demo.data)
    words = len(doc.text.split())
    assert 150 <= words <= 800, "a few paragraphs each"
    chunks = chunk_document(doc)
    assert chunks and all(chunk.text.strip() for chunk in chunks)


@pytest.mark.parametrize(("name", "keyword"), [(n, k) for n, ks in KEYWORDS.items() for k in ks])
def test_demo_vocabulary_is_distinct(parsed: dict[str, str], name: str, keyword: str) -> None:
    holders = [doc for doc, text in parsed.items() if keyword.lower() in text.lower()]
    assert holders == [name]


def test_printing_press_pages_have_distinct_subtopics() -> None:
    demo = next(d for d in demo_files() if d.name == "printing_press.pdf")
    doc = parse_document(demo.name, demo.data)
    assert [page.number for page in doc.pages] == [1, 2, 3]
    topics = {
        1: ["Gutenberg", "movable", "hand mould"],
        2: ["Venice", "Aldus", "italic"],
        3: ["Luther", "Reformation", "Literacy"],
    }
    for number, words in topics.items():
        for word in words:
            on = [page.number for page in doc.pages if word.lower() in page.text.lower()]
            assert on == [number], (word, on)
    # Default chunking keeps citations on the right page.
    for chunk in chunk_document(doc):
        if "Venice" in chunk.text:
            assert 2 in chunk.pages
        if "Luther" in chunk.text:
            assert 3 in chunk.pages


def test_travel_policy_has_two_pages() -> None:
    demo = next(d for d in demo_files() if d.name == "travel_policy.docx")
    doc = parse_document(demo.name, demo.data)
    assert [page.number for page in doc.pages] == [1, 2]
    assert "portal" in doc.pages[0].text and "per diem" not in doc.pages[0].text
    assert "per diem" in doc.pages[1].text


def test_lighthouses_is_valid_json() -> None:
    demo = next(d for d in demo_files() if d.name == "lighthouses.json")
    data = json.loads(demo.data)
    assert len(data["lighthouses"]) >= 5
    assert all({"name", "location", "built", "facts"} <= set(item) for item in data["lighthouses"])


@pytest.mark.parametrize("name", ["honeybees.md", "mars.md"])
def test_markdown_demos_have_headings_and_lists(name: str) -> None:
    demo = next(d for d in demo_files() if d.name == name)
    text = demo.data.decode()
    assert text.startswith("# ")
    assert re.search(r"^## ", text, re.MULTILINE)
    assert re.search(r"^- ", text, re.MULTILINE)
