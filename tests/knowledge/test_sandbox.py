"""Contained parsing: hostile files fail with a message naming the limit, parsed in a child process with limits."""

from __future__ import annotations

import pytest

from assistant_chat.knowledge.parsers import ParseError, ParseLimits, parse_document
from assistant_chat.knowledge.sandbox import SandboxLimits, parse_contained
from bench.hostile_files import docx_bomb, many_pages_pdf


def limits(timeout: float = 30.0, memory: int = 1024**3, **parse: int) -> SandboxLimits:
    return SandboxLimits(parse=ParseLimits(**parse), timeout_seconds=timeout, memory_bytes=memory)


def refused(name: str, data: bytes, sandbox: SandboxLimits) -> str:
    with pytest.raises(ParseError) as caught:
        parse_contained(name, data, limits=sandbox)
    return str(caught.value)


def test_an_ordinary_file_parses_in_the_child_with_progress() -> None:
    seen: list[float] = []
    document = parse_contained("p.pdf", many_pages_pdf(5, "Otters use rocks"), seen.append, limits())
    assert [page.number for page in document.pages] == [1, 2, 3, 4, 5]
    assert document.pages[0].text == "Otters use rocks"
    assert seen and seen[-1] == 1.0
    assert parse_contained("a.md", b"# Title\n\nBody", limits=limits()).text == "# Title\n\nBody"


def test_a_docx_bomb_is_refused_by_its_unpacked_size_before_it_inflates() -> None:
    message = refused("bomb.docx", docx_bomb(30 * 1024 * 1024), limits(max_unpacked_bytes=10 * 1024 * 1024))
    assert "unpacks to 30.0 MB" in message and "PARSE_MAX_UNPACKED_BYTES" in message


def test_a_docx_bomb_is_refused_by_its_compression_ratio() -> None:
    message = refused("bomb.docx", docx_bomb(8 * 1024 * 1024), limits(max_compression_ratio=50))
    assert "decompression bomb" in message and "PARSE_MAX_COMPRESSION_RATIO" in message


def test_a_pdf_over_the_page_limit_is_refused() -> None:
    message = refused("many.pdf", many_pages_pdf(120), limits(max_pages=100))
    assert message == "The PDF has 120 pages; the limit is 100 pages (PARSE_MAX_PAGES)"


def test_text_over_the_limit_is_refused_in_every_format() -> None:
    assert "PARSE_MAX_TEXT_CHARS" in refused("big.txt", b"word " * 3000, limits(max_text_chars=10_000))
    assert "PARSE_MAX_TEXT_CHARS" in refused("big.pdf", many_pages_pdf(40, "x" * 300), limits(max_text_chars=5000))
    with pytest.raises(ParseError, match="PARSE_MAX_TEXT_CHARS"):
        parse_document("big.docx", docx_bomb(200_000), limits=ParseLimits(max_text_chars=50_000))


def test_a_parse_that_runs_too_long_is_killed_at_the_deadline() -> None:
    message = refused("slow.pdf", many_pages_pdf(1500), limits(timeout=0.3, max_pages=5000))
    assert "longer than 0.3 s" in message and "PARSE_TIMEOUT_SECONDS" in message


def test_a_parse_that_needs_too_much_memory_fails_with_the_memory_limit() -> None:
    # Under the size limits, but lxml needs far more than 300 MB for 150 MB of XML.
    sandbox = limits(memory=300 * 1024 * 1024, max_unpacked_bytes=10**10, max_compression_ratio=10**9)
    message = refused("fat.docx", docx_bomb(150 * 1024 * 1024), sandbox)
    assert "PARSE_MAX_MEMORY_BYTES" in message


def test_deep_json_and_broken_files_fail_with_a_reason() -> None:
    assert "nesting is too deep" in refused("deep.json", b"[" * 200_000 + b"]" * 200_000, limits())
    assert "corrupt" in refused("broken.docx", b"PK\x03\x04 not a zip", limits())
    assert "Unsupported file type" in refused("x.exe", b"MZ", limits())


def test_each_file_gets_a_fresh_child_and_a_dead_template_is_replaced() -> None:
    from assistant_chat.knowledge import sandbox

    assert parse_contained("a.txt", b"first", limits=limits()).text == "first"
    assert sandbox._template is not None
    template = sandbox._template[0]
    children = [sandbox._fork_child() for _ in range(2)]
    for child in children:
        child.stdin.close()  # no header: the child fails and exits
        assert isinstance(child.wait(), int)  # its exit status, from the monitor
    assert children[0].pid != children[1].pid != template.pid
    template.kill()
    template.wait()
    assert parse_contained("b.txt", b"second", limits=limits()).text == "second"  # a new template
    assert sandbox._template[0].pid != template.pid
