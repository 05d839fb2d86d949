"""Tests for assistant_chat.knowledge.chunking (no Django needed)."""

from __future__ import annotations

import json
import random
import re

import pytest

from assistant_chat.knowledge.chunking import ChunkDraft, chunk_document, count_tokens
from assistant_chat.knowledge.demo_documents import demo_files
from assistant_chat.knowledge.parsers import Page, ParsedDocument, parse_document

WORDS = (
    "river glacier basalt harbour lantern meadow orchard quartz saffron tundra "
    "velvet willow zephyr amber beacon canyon delta ember fjord granite"
).split()


def _sentence(rng: random.Random, index: int) -> str:
    body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 18)))
    return f"Sentence {index} mentions {body}."


def _prose(paragraphs: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    counter = iter(range(1_000_000))
    return "\n\n".join(
        " ".join(_sentence(rng, next(counter)) for _ in range(rng.randint(1, 8))) for _ in range(paragraphs)
    )


def _unpaged(text: str) -> ParsedDocument:
    return ParsedDocument(kind="text", pages=[Page(number=None, text=text)])


def _check_invariants(chunks: list[ChunkDraft], max_tokens: int) -> None:
    assert [chunk.ordinal for chunk in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert chunk.text.strip(), "empty chunk"
        assert chunk.text == chunk.text.strip()
        assert chunk.tokens == count_tokens(chunk.text)
        assert 0 < chunk.tokens <= max_tokens
        assert chunk.pages == sorted(set(chunk.pages))


# --------------------------------------------------------------------------
# count_tokens
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0),
        ("   \n\t", 0),
        ("hello", 1),
        ("hello world", 2),
        ("Hello, world!", 4),
        ("because", 1),  # up to 7 letters: one token
        ("lighthouse", 3),  # 10 letters: ceil(10 / 4)
        ("internationalization", 5),  # 20 letters
        ("2024", 2),  # digits in groups of 3
        ("1,000,000", 5),
        ("snake_case_name", 4),
        ("日本語", 3),  # CJK: one per character
        ("e.g.", 4),
    ],
)
def test_count_tokens_examples(text: str, expected: int) -> None:
    assert count_tokens(text) == expected


def test_count_tokens_is_deterministic_and_additive() -> None:
    a, b = _prose(3, seed=1), _prose(3, seed=2)
    assert count_tokens(a) == count_tokens(a)
    for sep in (" ", "\n", "\n\n", "\t  "):
        assert count_tokens(a + sep + b) == count_tokens(a) + count_tokens(b)


def test_count_tokens_is_in_bpe_ballpark() -> None:
    # English prose is ~1.3 BPE tokens per word; the estimate should be close.
    text = demo_files()[0].data.decode()
    ratio = count_tokens(text) / len(text.split())
    assert 1.0 < ratio < 2.0


# --------------------------------------------------------------------------
# chunk_document: basic invariants
# --------------------------------------------------------------------------


def test_short_document_is_one_chunk() -> None:
    chunks = chunk_document(_unpaged("Just one short sentence."))
    assert chunks == [ChunkDraft(ordinal=0, text="Just one short sentence.", pages=[], tokens=6)]


@pytest.mark.parametrize("text", ["", "   ", "\n\n\n"])
def test_empty_document_has_no_chunks(text: str) -> None:
    assert chunk_document(_unpaged(text)) == []
    assert chunk_document(ParsedDocument(kind="pdf", pages=[])) == []


@pytest.mark.parametrize(("max_tokens", "overlap_tokens"), [(256, 32), (64, 8), (100, 0), (40, 30), (16, 4)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_chunk_invariants_on_prose(max_tokens: int, overlap_tokens: int, seed: int) -> None:
    chunks = chunk_document(_unpaged(_prose(40, seed)), max_tokens=max_tokens, overlap_tokens=overlap_tokens)
    assert len(chunks) > 1
    _check_invariants(chunks, max_tokens)
    assert all(chunk.pages == [] for chunk in chunks)


@pytest.mark.parametrize("seed", [0, 3])
def test_every_sentence_is_kept_in_order(seed: int) -> None:
    text = _prose(30, seed)
    sentences = re.findall(r"Sentence \d+ mentions [a-z ]+\.", text)
    chunks = chunk_document(_unpaged(text), max_tokens=80, overlap_tokens=16)
    # Sentences are numbered, hence unique; overlap repeats are dropped.
    found = [s for chunk in chunks for s in re.findall(r"Sentence \d+ mentions [a-z ]+\.", chunk.text)]
    assert list(dict.fromkeys(found)) == sentences


def test_without_overlap_chunks_partition_the_text() -> None:
    text = _prose(25, seed=5)
    chunks = chunk_document(_unpaged(text), max_tokens=60, overlap_tokens=0)
    # Chunks only differ from the source in how whitespace joins them.
    assert " ".join(c.text for c in chunks).split() == text.split()


def _shared_edge(previous: str, following: str) -> str:
    """Longest prefix of ``following`` that is also a suffix of ``previous``."""
    for size in range(min(len(previous), len(following)), 0, -1):
        if previous.endswith(following[:size]):
            return following[:size]
    return ""


@pytest.mark.parametrize(("max_tokens", "overlap_tokens"), [(128, 32), (64, 16), (256, 48)])
def test_consecutive_chunks_overlap(max_tokens: int, overlap_tokens: int) -> None:
    chunks = chunk_document(_unpaged(_prose(60, seed=7)), max_tokens=max_tokens, overlap_tokens=overlap_tokens)
    assert len(chunks) > 3
    overlapping = 0
    for previous, following in zip(chunks, chunks[1:], strict=False):
        shared = _shared_edge(previous.text, following.text)
        assert count_tokens(shared) <= overlap_tokens
        if shared.strip():
            overlapping += 1
            # Overlap starts at a word boundary of the previous chunk.
            start = len(previous.text) - len(shared)
            assert start == 0 or previous.text[start - 1].isspace()
    # The overlap may be dropped when it would overflow the next chunk, but
    # that is the exception.
    assert overlapping >= (len(chunks) - 1) * 0.7


def test_overlap_cut_at_word_boundary_for_long_sentence() -> None:
    sentence = " ".join(f"w{i}" for i in range(500)) + "."
    chunks = chunk_document(_unpaged(sentence), max_tokens=50, overlap_tokens=10)
    _check_invariants(chunks, 50)
    for previous, following in zip(chunks, chunks[1:], strict=False):
        shared = _shared_edge(previous.text, following.text)
        assert shared.strip()
        assert 0 < count_tokens(shared) <= 10
        assert following.text.split()[0] in previous.text.split()


# --------------------------------------------------------------------------
# Long sentences, long words
# --------------------------------------------------------------------------


def test_over_long_sentence_is_split_by_words() -> None:
    words = [f"token{i}" for i in range(2000)]
    chunks = chunk_document(_unpaged(" ".join(words)), max_tokens=64, overlap_tokens=0)
    _check_invariants(chunks, 64)
    assert " ".join(c.text for c in chunks).split() == words


def test_single_enormous_word_is_cut_between_tokens() -> None:
    blob = "".join(random.Random(9).choice("abcdefghij0123456789+/") for _ in range(20_000))
    chunks = chunk_document(_unpaged(f"Start. {blob} End."), max_tokens=64, overlap_tokens=8)
    _check_invariants(chunks, 64)
    assert "".join(c.text for c in chunks).replace(" ", "").count(blob) == 1
    assert chunks[0].text.startswith("Start.")
    assert chunks[-1].text.endswith("End.")


def test_long_lines_without_sentences() -> None:
    rows = [f"{i},harbour-{i},{i * 7}" for i in range(3000)]
    chunks = chunk_document(_unpaged("\n".join(rows)), max_tokens=64, overlap_tokens=8)
    _check_invariants(chunks, 64)
    # Lines are kept intact and in order.
    seen = [line for chunk in chunks for line in chunk.text.split("\n")]
    deduped = [line for i, line in enumerate(seen) if i == 0 or line != seen[i - 1]]
    assert set(rows) <= set(seen)
    assert all(line in rows for line in deduped)


def test_json_indentation_survives_in_chunks() -> None:
    payload = {"items": [{"id": i, "name": f"lighthouse {i}", "height": i * 3} for i in range(200)]}
    text = json.dumps(payload, indent=2)
    chunks = chunk_document(_unpaged(text), max_tokens=80, overlap_tokens=10)
    _check_invariants(chunks, 80)
    assert any('\n    {\n      "id"' in chunk.text for chunk in chunks)


# --------------------------------------------------------------------------
# Pages
# --------------------------------------------------------------------------


def test_every_page_starts_its_own_chunk() -> None:
    doc = ParsedDocument(
        kind="pdf",
        pages=[Page(1, "First page sentence."), Page(2, "Second page sentence."), Page(4, "Fourth.")],
    )
    chunks = chunk_document(doc)
    assert [(chunk.pages, chunk.text) for chunk in chunks] == [
        ([1], "First page sentence."),
        ([2], "Second page sentence."),
        ([4], "Fourth."),
    ]


def test_chunks_spanning_page_boundaries() -> None:
    # Pages of very different sizes: no chunk crosses a page boundary.
    sizes = [1, 6, 1, 1, 3, 8, 1, 2]
    pages = [Page(number, _prose(size, seed=number)) for number, size in enumerate(sizes, start=1)]
    chunks = chunk_document(ParsedDocument(kind="pdf", pages=pages), max_tokens=120, overlap_tokens=20)
    _check_invariants(chunks, 120)
    numbers = set(range(1, len(sizes) + 1))
    assert all(chunk.pages and set(chunk.pages) <= numbers for chunk in chunks)
    assert all(len(chunk.pages) == 1 for chunk in chunks)
    # Every page is cited by some chunk, and citations never go backwards.
    assert {p for chunk in chunks for p in chunk.pages} == numbers
    firsts = [chunk.pages[0] for chunk in chunks]
    assert firsts == sorted(firsts)
    # A chunk cites exactly the pages its sentences come from.
    for chunk in chunks:
        owners = {
            page.number
            for sentence in re.findall(r"Sentence \d+ mentions [a-z ]+\.", chunk.text)
            for page in pages
            if sentence in page.text
        }
        assert owners <= set(chunk.pages)


def test_small_page_does_not_continue_onto_next_page() -> None:
    doc = ParsedDocument(kind="pdf", pages=[Page(1, "A short first page."), Page(2, _prose(10, seed=3))])
    chunks = chunk_document(doc, max_tokens=120, overlap_tokens=20)
    assert (chunks[0].pages, chunks[0].text) == ([1], "A short first page.")
    assert chunks[1].pages == [2]
    assert chunks[1].text.startswith("Sentence 0 ")


def test_full_chunk_ends_at_page_boundary() -> None:
    first = " ".join(f"Glacier fact number {i} is here." for i in range(14))  # ~98 tokens
    doc = ParsedDocument(kind="pdf", pages=[Page(1, first), Page(2, "Volcano fact one. Volcano fact two.")])
    chunks = chunk_document(doc, max_tokens=120, overlap_tokens=20)
    # Page 1 fills the chunk past half: page 2 starts afresh, without overlap,
    # so each chunk cites exactly one page.
    assert [(c.pages, c.text) for c in chunks] == [([1], first), ([2], "Volcano fact one. Volcano fact two.")]


def test_unpaged_documents_have_no_pages() -> None:
    chunks = chunk_document(_unpaged(_prose(30)), max_tokens=64, overlap_tokens=8)
    assert chunks and all(chunk.pages == [] for chunk in chunks)


# --------------------------------------------------------------------------
# Structure
# --------------------------------------------------------------------------


def test_paragraphs_preferred_as_boundaries() -> None:
    paragraphs = [" ".join(f"Para{p} sentence {s} is here." for s in range(6)) for p in range(8)]
    chunks = chunk_document(_unpaged("\n\n".join(paragraphs)), max_tokens=100, overlap_tokens=0)
    _check_invariants(chunks, 100)
    for chunk in chunks:
        assert chunk.text.startswith("Para")
        assert chunk.text.endswith("is here.")
    # No paragraph (about 42 tokens) is torn across chunks.
    for paragraph in paragraphs:
        assert any(paragraph in chunk.text for chunk in chunks)


def test_markdown_heading_not_left_dangling() -> None:
    sections = [f"## Section {i}\n\n" + " ".join(f"Fact {i}.{s} about bees." for s in range(10)) for i in range(8)]
    chunks = chunk_document(_unpaged("# Title\n\n" + "\n\n".join(sections)), max_tokens=80, overlap_tokens=8)
    _check_invariants(chunks, 80)
    for chunk in chunks:
        assert not chunk.text.splitlines()[-1].startswith("#")


def test_abbreviations_do_not_split_sentences() -> None:
    text = "The tower was built c. 280 BC and rebuilt e.g. in stone. " * 40
    chunks = chunk_document(_unpaged(text), max_tokens=40, overlap_tokens=0)
    for chunk in chunks:
        assert chunk.text.startswith("The tower")


@pytest.mark.parametrize(("max_tokens", "overlap_tokens"), [(0, 0), (10, 10), (10, 11), (10, -1)])
def test_invalid_arguments(max_tokens: int, overlap_tokens: int) -> None:
    with pytest.raises(ValueError):
        chunk_document(_unpaged("text"), max_tokens=max_tokens, overlap_tokens=overlap_tokens)


# --------------------------------------------------------------------------
# Demo documents and scale
# --------------------------------------------------------------------------


@pytest.mark.parametrize("demo", demo_files(), ids=lambda demo: demo.name)
def test_demo_documents_chunk_cleanly(demo: object) -> None:
    doc = parse_document(demo.name, demo.data)  # type: ignore[attr-defined]
    for max_tokens, overlap in [(256, 32), (64, 8)]:
        chunks = chunk_document(doc, max_tokens=max_tokens, overlap_tokens=overlap)
        _check_invariants(chunks, max_tokens)
        paged = doc.kind in {"pdf", "doc_x"}
        assert all(bool(chunk.pages) == paged for chunk in chunks)


def test_five_megabytes_of_text() -> None:
    # Runs fast (about a second); timing is not asserted to keep CI stable.
    base = _prose(200, seed=11)
    text = (base + "\n\n") * (5_000_000 // len(base) + 1)
    chunks = chunk_document(_unpaged(text[:5_000_000]))
    assert len(chunks) > 1000
    assert max(chunk.tokens for chunk in chunks) <= 256
    assert [c.ordinal for c in chunks[:3]] == [0, 1, 2]
    assert all(chunk.text.strip() for chunk in chunks)
