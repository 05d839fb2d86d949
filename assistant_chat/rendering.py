"""Markdown to safe HTML for messages shown in rooms, the file viewer and the admin.

A real parser (markdown-it-py, raw HTML off) and then a real sanitizer (nh3) with an allow-list: model output and
user text are untrusted and must never run script in anyone's browser. Inline citations (`[1, pp. 3]`) become
links to the file viewer by rewriting the parser's text tokens, never the HTML. Imports no models.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import nh3
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.renderer import RendererHTML
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from markdown_it.utils import OptionsDict
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.token import STANDARD_TYPES
from pygments.util import ClassNotFound

CITATION_RE = re.compile(r"\[(\d{1,3})(?:, pp?\. (\d{1,5}(?:, \d{1,5})*))?\]")

ALLOWED_TAGS = {
    "a", "p", "br", "hr", "strong", "em", "del", "s", "code", "pre", "blockquote", "ul", "ol", "li",
    "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td", "img", "span",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title", "data-file", "data-page", "data-number", "target"},
    "img": {"src", "alt", "title"},
    "ol": {"start"},
    "th": {"style"},
    "td": {"style"},
}
# Pygments' short token classes (`k`, `s2`, `nf`, ...): the only classes a highlighted code block carries.
HIGHLIGHT_CLASSES = frozenset(cls for cls in STANDARD_TYPES.values() if cls)
ALLOWED_CLASSES = {
    "a": {"citation"},
    "span": set(HIGHLIGHT_CLASSES),
    "pre": {"highlight"},
    "code": set(),  # per render: `language-<name>` for the languages of that message's code blocks
}
LANGUAGE_RE = re.compile(r"^[A-Za-z0-9_+#.-]{1,32}$")
HIGHLIGHT_MAX_CHARS = 50_000  # a longer block is shown plain: highlighting is for reading, not for megabytes

# A citation's link target: (inline number, first page or None) -> (url, file id) or None when unknown.
CitationLinker = Callable[[int, int | None], tuple[str, str] | None]


@dataclass(frozen=True)
class CitationTarget:
    file_id: str
    file_name: str
    pages: tuple[int, ...]


def _citation_rule(state: StateCore) -> None:
    linker: CitationLinker | None = state.env.get("citation_linker")
    if linker is None:
        return
    for block in state.tokens:
        if block.type != "inline" or not block.children:
            continue
        children: list[Token] = []
        inside_link = 0
        for token in block.children:
            if token.type == "link_open":
                inside_link += 1
            elif token.type == "link_close":
                inside_link -= 1
            if token.type != "text" or inside_link or "[" not in token.content:
                children.append(token)
                continue
            children.extend(_split_citations(token, linker))
        block.children = children


def _split_citations(token: Token, linker: CitationLinker) -> list[Token]:
    out: list[Token] = []
    text = token.content
    cursor = 0
    for match in CITATION_RE.finditer(text):
        number = int(match.group(1))
        pages = match.group(2)
        first_page = int(pages.split(",")[0]) if pages else None
        target = linker(number, first_page)
        if target is None:
            continue
        url, file_id = target
        if match.start() > cursor:
            out.append(_text(text[cursor : match.start()]))
        link = Token("link_open", "a", 1)
        link.attrs = {
            "href": url,
            "class": "citation",
            "data-file": file_id,
            "data-number": str(number),
            "target": "_blank",
        }
        if first_page is not None:
            link.attrs["data-page"] = str(first_page)
        out += [link, _text(match.group(0)), Token("link_close", "a", -1)]
        cursor = match.end()
    if cursor == 0:
        return [token]
    if cursor < len(text):
        out.append(_text(text[cursor:]))
    return out


def _text(content: str) -> Token:
    token = Token("text", "", 0)
    token.content = content
    return token


def image_allowed(src: str, hosts: frozenset[str]) -> bool:
    """Whether a message may show the image at `src`: this site's own (a relative URL) or an https image on a
    host staff allowed (CHAT_IMAGE_HOSTS). Anything else would let a message make every reader's browser fetch a
    URL of the writer's choosing (a tracking pixel, an address on the readers' network)."""
    try:
        parts = urlsplit(src.strip())
    except ValueError:
        return False
    if not parts.scheme and not parts.netloc:
        return not src.strip().startswith(("//", "\\"))
    return parts.scheme == "https" and (parts.hostname or "") in hosts


def _image_rule(renderer: RendererHTML, tokens: list[Token], idx: int, options: OptionsDict, env: dict) -> str:
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    if image_allowed(src, env["image_hosts"]):
        return renderer.image(tokens, idx, options, env)
    # Not loaded: a link the reader may choose to follow, named by its alt text.
    alt = renderer.renderInlineAsText(token.children or [], options, env) or "image"
    return f'<a href="{escapeHtml(src)}">{escapeHtml("image: " + alt)}</a>'


def _fence_rule(renderer: RendererHTML, tokens: list[Token], idx: int, options: OptionsDict, env: dict) -> str:
    """A fenced code block, highlighted by Pygments when its language is known (once per block: streaming renders
    each completed block once). Pygments escapes the code; the sanitizer still runs over the result."""
    token = tokens[idx]
    language = token.info.strip().split(maxsplit=1)[0] if token.info.strip() else ""
    code = token.content
    body = None
    if language and LANGUAGE_RE.match(language) and len(code) <= HIGHLIGHT_MAX_CHARS:
        try:
            lexer = get_lexer_by_name(language)
        except ClassNotFound:
            lexer = None
        if lexer is not None:
            body = highlight(code, lexer, _formatter)
    if body is None:
        body = escapeHtml(code)
    attribute = ""
    if language and LANGUAGE_RE.match(language):
        attribute = f' class="language-{language.lower()}"'
        env.setdefault("code_languages", set()).add(language.lower())
    return f'<pre class="highlight"><code{attribute}>{body}</code></pre>\n'


_formatter = HtmlFormatter(nowrap=True)
_parser = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(["table", "strikethrough"])
_parser.core.ruler.after("text_join", "citations", _citation_rule)
_parser.add_render_rule("image", _image_rule)
_parser.add_render_rule("fence", _fence_rule)


def configured_image_hosts() -> frozenset[str]:
    from django.conf import settings

    return frozenset(host.lower() for host in settings.CHAT_IMAGE_HOSTS)


def render_markdown(text: str, linker: CitationLinker | None = None, image_hosts: frozenset[str] | None = None) -> str:
    """Sanitized HTML for a Markdown message; citations link through `linker` when given; images load only from
    this site or `image_hosts` (CHAT_IMAGE_HOSTS when not given), other images become links."""
    hosts = configured_image_hosts() if image_hosts is None else image_hosts
    env: dict = {"image_hosts": hosts}
    if linker:
        env["citation_linker"] = linker

    def keep_attribute(tag: str, attribute: str, value: str) -> str | None:
        if tag == "img" and attribute == "src" and not image_allowed(value, hosts):
            return None  # the sanitizer's own check, should anything but the image rule produce an <img>
        return value

    html = _parser.render(text, env)
    classes = ALLOWED_CLASSES
    if env.get("code_languages"):
        classes = {**ALLOWED_CLASSES, "code": {f"language-{name}" for name in env["code_languages"]}}
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        allowed_classes=classes,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
        filter_style_properties={"text-align"},
        attribute_filter=keep_attribute,
    )


def citation_linker(citations: list[dict], url_for: Callable[[str, int | None], str]) -> CitationLinker:
    """A linker over a message's stored citations: inline number n opens that reference's file at the page."""
    targets: dict[int, str] = {}
    for citation in citations:
        for reference in citation.get("references", []):
            targets.setdefault(int(reference["number"]), str(reference["file_id"]))

    def link(number: int, page: int | None) -> tuple[str, str] | None:
        file_id = targets.get(number)
        if file_id is None:
            return None
        return url_for(file_id, page), file_id

    return link


def stable_boundary(text: str, start: int = 0) -> int:
    """The end of the last complete Markdown block in `text` (after a blank line outside a code fence), or
    `start` when no block completed since `start`. Streaming renders each completed block once."""
    boundary = start
    in_fence = False
    fence = ""
    position = 0
    previous_blank = False
    for line in text.splitlines(keepends=True):
        end = position + len(line)
        stripped = line.strip()
        if not line.endswith("\n"):
            break  # the last line is still arriving
        marker = stripped[:3]
        if marker in ("```", "~~~") and (not in_fence or marker == fence):
            in_fence, fence = (not in_fence, marker)
            if not in_fence and end > start:
                boundary = end  # a closed fence ends a block
        elif not in_fence and not stripped and not previous_blank and end > start:
            boundary = end
        previous_blank = not stripped
        position = end
    return max(boundary, start)
