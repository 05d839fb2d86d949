"""Markdown to safe HTML: real Markdown features survive, script never does, citations become viewer links."""

import re
from html.parser import HTMLParser

import pytest

from assistant_chat.rendering import citation_linker, render_markdown, stable_boundary


def test_code_blocks_are_highlighted_with_classes_only():
    html = render_markdown("```python\nprint('x < y')  # note\n```\n\n```nosuchlang\na<b\n```\n\n```\nplain\n```")
    assert '<pre class="highlight"><code class="language-python"><span class="nb">print</span>' in html
    assert '<span class="c1"># note</span>' in html and "x &lt; y" in html
    assert '<code class="language-nosuchlang">a&lt;b' in html  # unknown language: escaped, not highlighted
    assert '<pre class="highlight"><code>plain' in html
    assert "style=" not in html  # classes only: the site's CSS colours them


@pytest.mark.parametrize(
    "fence",
    [
        '```"><script>alert(1)</script>\nx\n```',
        "```html\n<script>alert(1)</script><img src=x onerror=alert(1)>\n```",
        '```python onload="alert(1)"\nx = 1\n```',
        "```javascript\n</code></pre><script>alert(1)</script>\n```",
    ],
)
def test_highlighted_code_never_carries_script(fence):
    tags = _tags(render_markdown(fence))
    assert {name for name, _attrs in tags} <= {"pre", "code", "span"}
    for name, attrs in tags:
        assert set(dict(attrs)) <= {"class"}, (name, attrs)
        assert re.fullmatch(r"[a-z0-9-]+", dict(attrs).get("class") or "x"), (name, attrs)


def test_markdown_features_render():
    html = render_markdown(
        "# Title\n\n- one\n- two\n\n1. first\n2. second\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
        "```python\nprint('x < y')\n```\n\n**bold** _it_ ~~gone~~ `code` [site](https://example.com)"
    )
    for fragment in ("<h1>", "<ul>", "<ol>", "<table>", "<td>1</td>", '<code class="language-python">', "x &lt; y"):
        assert fragment in html
    assert "<strong>bold</strong>" in html and "<s>gone</s>" in html
    assert '<a href="https://example.com" rel="noopener noreferrer nofollow">site</a>' in html


@pytest.mark.parametrize(
    "hostile",
    [
        "<script>alert(1)</script>",
        '<img src=x onerror="alert(1)">',
        "[x](javascript:alert(1))",
        "[x](JaVaScRiPt:alert(1))",
        "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        "![x](javascript:alert(1))",
        '<a href="javascript:alert(1)">x</a>',
        "<iframe src=https://evil.example></iframe>",
        '<svg onload="alert(1)"></svg>',
        "[x](vbscript:msgbox(1))",
        '<div style="background:url(javascript:alert(1))">x</div>',
    ],
)
def test_script_never_survives(hostile):
    tags = _tags(render_markdown(f"before {hostile} after"))
    assert {name for name, _attrs in tags} <= {"p", "a"}
    for _name, attrs in tags:
        assert not any(key.startswith("on") or key == "style" for key in attrs)
        href = (attrs.get("href") or "").strip().lower()
        assert not href.startswith(("javascript:", "vbscript:", "data:"))


def _tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    """Every element the browser would build from `html` (escaped text is text, not tags)."""
    found: list[tuple[str, dict[str, str | None]]] = []

    class Collector(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, dict(attrs)))

    Collector().feed(html)
    return found


def test_citations_link_to_the_file_viewer_at_the_page():
    citations = [{"position": 5, "references": [{"number": 1, "file_id": "abc", "file_name": "a.pdf", "pages": [3]}]}]
    linker = citation_linker(citations, lambda file_id, page: f"/rooms/r/files/{file_id}/?page={page}")
    html = render_markdown("Otters use rocks. [1, pp. 3] And [2] is unknown.", linker)
    assert 'href="/rooms/r/files/abc/?page=3"' in html and 'class="citation"' in html and 'data-page="3"' in html
    assert "[2]" in html and html.count("<a ") == 1  # a marker with no citation stays text


def test_citation_markers_inside_code_stay_code():
    citations = [{"position": 0, "references": [{"number": 1, "file_id": "abc", "file_name": "a", "pages": []}]}]
    linker = citation_linker(citations, lambda file_id, page: f"/f/{file_id}")
    html = render_markdown("`x[1]`\n\n```\ny[1]\n```", linker)
    assert "<a " not in html


def test_stable_boundary_waits_for_complete_blocks():
    assert stable_boundary("Hello wor") == 0
    assert stable_boundary("Para one.\n\nPara tw") == len("Para one.\n\n")
    fenced = "```\ncode\n\nmore code\n"
    assert stable_boundary(fenced) == 0  # a blank line inside an open fence ends nothing
    closed = fenced + "```\n"
    assert stable_boundary(closed) == len(closed)
    assert stable_boundary("A.\n\nB.\n\nC", start=4) == len("A.\n\nB.\n\n")
