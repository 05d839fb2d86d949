"""How the offline model reads a context snippet: passages (a paragraph, a list with its lead-in, a table, a code
block, a JSON record or entry) under their heading, each made of quotable sentences, and the word forms it compares
with a question. A list, a table or a code block is kept as Markdown too, so that an answer can quote it whole.

Pure text processing, no Django, no network: the offline model (`offline.py`) scores what this returns.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_LIST_ITEM = re.compile(r"^(?:[-*+•]|\d{1,3}[.)])\s+")
_JSON_PAIR = re.compile(r'^"((?:[^"\\]|\\.){1,80})"\s*:\s*(.*?)\s*,?$', re.DOTALL)
_JSON_STRUCTURE = re.compile(r"^[\[\]{},\s]*$")
_TITLE_WORD = re.compile(r"^[A-Z0-9][\w'’-]*$|^(?:of|the|and|a|an|in|on|to|for|-|–|&|:)$")
_EMPHASIS = re.compile(r"\*\*|__|`|(?<![\w*])\*(?=\S)|(?<=\S)\*(?![\w*])")
_SUPERSEDED = re.compile(
    r"\b(?:superseded|withdrawn|obsolete|deprecated|archived|no longer (?:in force|applies|valid)|previous|former|"
    r"old (?:rules|policy|version)|retired|replaced)\b",
    re.I,
)
_SHORT_VALUE = 80  # a JSON value this short is a fact ("built: 1810"), not prose
_RECORD_NAMES = ("name", "title")

STOP = frozenset(
    """a about above after again against all am an and any are as at be because been before being below between both
    but by can could did do does doing down during each few for from further had has have having he her here hers him
    his how i if in into is it its itself just me more most my no nor not now of off on once only or other our ours out
    over own same she should so some such than that the their theirs them then there these they this those through to
    too under until up very was we were what when where which while who whom why will with would you your yours tell
    please know explain describe give list get gets got take takes use uses used using need needs want wants
    something anything everything nothing someone anyone everyone somebody anybody thing things""".split()
)

# Endings that make another word of the same family ("threat" -> "threaten", "red" -> "reddish", "invent" ->
# "invention"): two stems are one word when the longer is the shorter plus one of these.
_DERIVED = frozenset(
    "e s es ed er ers est or ors ion ions ation ations ish ly al ally ic ical ity ness ment ments en ive ist ists ian "
    "ans an ance ence ant ent ful y".split()
)


@functools.lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A light suffix strip, so that "otters" meets "otter", "erupted" "erupts", "colonies" "colony" and "boxes"
    "box" (but "honeybees" stays "honeybee")."""
    if len(word) > 4 and word.endswith(("ies", "ied")):
        return word[:-3] + "y"
    if len(word) > 5 and word.endswith("ing"):
        return word[:-3]
    if len(word) > 4 and word.endswith("ed"):
        return word[:-2]
    if len(word) > 4 and word.endswith(("ses", "xes", "zes", "ches", "shes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def terms(text: str) -> list[str]:
    """The stems of a text's words, stopwords left out."""
    return [stem(word) for word in (w.lower() for w in _WORD.findall(text)) if word not in STOP]


def same_family(one: str, other: str) -> bool:
    """Whether two stems are forms of one word: equal, or one is the other plus a derivational ending (with a
    doubled last consonant, or a dropped final e)."""
    if one == other:
        return True
    if one[:3] != other[:3]:
        return False  # every relation below keeps the first three letters
    short, long = (one, other) if len(one) < len(other) else (other, one)
    if len(short) < 3:
        return False
    for base in (short, short[:-1] if short.endswith("e") else None):
        if base and long.startswith(base):
            rest = long[len(base) :]
            if rest in _DERIVED or (rest[:1] == base[-1] and rest[1:] in _DERIVED):
                return True
    return False


@dataclass
class Sentence:
    text: str
    terms: frozenset[str]
    items: list[str] = field(default_factory=list)  # a list's lead-in ("three kinds of bees:") quotes its list
    lead: int | None = None  # an item's sentence: the index of its lead-in in the passage
    ordered: bool = False  # its items were numbered ("1. Unplug the router")
    block: str = ""  # a table or code block this sentence introduces ("The table below lists...:"), as Markdown
    row: bool = False  # a table row, quoted with its headers

    def quoted(self) -> tuple[str, str]:
        """What to quote: the sentence, and the Markdown block that goes with it (its list, table or code)."""
        if self.items:
            marks = [f"{n}." for n in range(1, len(self.items) + 1)] if self.ordered else ["-"] * len(self.items)
            return self.text, "\n".join(f"{mark} {item}" for mark, item in zip(marks, self.items, strict=True))
        return self.text, self.block


@dataclass
class Passage:
    heading: str
    sentences: list[Sentence] = field(default_factory=list)
    kind: str = "prose"  # prose | table | code | record (a JSON object with a name)
    block: str = ""  # a table's or code block's Markdown

    @property
    def superseded(self) -> bool:
        """Under a heading that says it no longer applies ("Version 1 (2022) — superseded", "PREVIOUS RULES
        (withdrawn)"): kept for reference, not the answer unless the question asks about the past."""
        return bool(_SUPERSEDED.search(self.heading))

    @property
    def heading_terms(self) -> frozenset[str]:
        return frozenset(terms(self.heading))


def passages(text: str, *, json_like: bool = False) -> list[Passage]:
    """The passages of a snippet, in order. JSON is read by record and entry; other text by paragraph (a blank
    line), with Markdown headings and title lines as the heading of what follows."""
    found = _json_passages(text) if json_like else _prose_passages(text)
    return [p for p in found if p.sentences]


def _clean(text: str) -> str:
    text = _LIST_ITEM.sub("", text.strip())
    return _EMPHASIS.sub("", text).strip()


def _sentence(text: str, *, said: str | None = None, lead: int | None = None) -> Sentence:
    """A quotable sentence, matched by its own words, or by `said` where the quoted text adds a heading's."""
    return Sentence(text=text, terms=frozenset(terms(text if said is None else said)), lead=lead)


# A full stop after these (or after an initial, "J. Smith") does not end the sentence.
_ABBREVIATION = re.compile(
    r"(?:\b(?:Mr|Mrs|Ms|Dr|Prof|St|Sr|Jr|Mt|Fig|Figs|Vol|Ch|Sec|approx|ca|cf|vs|Inc|Ltd|Corp)"
    r"|\be\.g|\bi\.e|\b[A-Z])\.$"
)


def sentences(text: str) -> list[str]:
    """The sentences of a plain text, as the offline model quotes them."""
    found: list[str] = []
    for piece in _SENTENCE.split(_clean(text)):
        if found and _ABBREVIATION.search(found[-1]):
            found[-1] += " " + piece  # "Dr." "Smith wrote..." is one sentence
        else:
            found.append(piece)
    return [s.strip() for s in found if len(s.strip()) > 2]


def is_title(line: str) -> bool:
    """A title line: no closing punctuation, mostly capitalised words ("The History of the Printing Press")."""
    if line.endswith((".", "!", "?", ":", ";", ",")) or len(line) > 120:
        return False
    words = line.split()
    return len(words) >= 2 and sum(bool(_TITLE_WORD.match(w)) for w in words) >= 0.8 * len(words)


def _is_short_heading(line: str) -> bool:
    """A few words with no punctuation, digits or list marker: on a line of its own, a heading ("Leave policy");
    "Opening hours: 9-17" is a fact."""
    return len(line.split()) <= 8 and not _LIST_ITEM.match(line) and not re.search(r"[\d.!?:;,]", line)


_FENCE = re.compile(r"^[ \t]*(```|~~~)[^\n]*\n.*?^[ \t]*\1[ \t]*$", re.MULTILINE | re.DOTALL)
_CODE_MARK = "\x00code{}\x00"  # stands for a fenced block while the text around it is split into paragraphs


_FENCE_LINE = re.compile(r"^[ \t]*(?:```|~~~)(.*)$", re.MULTILINE)


def _balance_fences(text: str) -> str:
    """A snippet cut out of a longer file can start or end inside a code block: close what it opens, open what it
    closes (a bare fence first, before one that names a language, closes a block begun before the snippet)."""
    fences = list(_FENCE_LINE.finditer(text))
    if not fences:
        return text
    if not fences[0].group(1).strip() and (len(fences) == 1 or fences[1].group(1).strip() or len(fences) % 2):
        text = "```\n" + text
        fences = list(_FENCE_LINE.finditer(text))
    if len(fences) % 2:
        text = text.rstrip("\n") + "\n```"
    return text


def _is_capitals(line: str) -> bool:
    """A line in capitals standing alone ("CURRENT RULES (from 1 April 2025)"): a heading."""
    letters = [c for c in line if c.isalpha()]
    words = re.findall(r"[A-Za-z]{2,}", line)
    return (
        len(line) <= 100
        and len(words) >= 1
        and sum(w.isupper() for w in words) >= max(1, 0.6 * len(words))
        and (sum(c.isupper() for c in letters) >= 0.6 * len(letters))
    )


def _prose_passages(text: str) -> list[Passage]:
    # Where two chunks were joined, a heading can follow a sentence on its line ("...dioxide. ## Moons").
    text = re.sub(r"(?<=[.!?:])[ \t]+(#{1,6} )", r"\n\n\1", text)
    # A fenced code block may hold blank lines: it is one block of its own, whatever is inside.
    fences: list[str] = []

    def _hold(match: re.Match[str]) -> str:
        fences.append(match.group(0).strip("\n"))
        return "\n\n" + _CODE_MARK.format(len(fences) - 1) + "\n\n"

    text = _FENCE.sub(_hold, _balance_fences(text))
    found: list[Passage] = []
    headings: dict[int, str] = {}  # level -> the heading in force ("# Honeybees" still heads "## Threats")
    heading = ""
    lead_open = False  # the last passage ended in a lead-in ("...:"), so a list that follows belongs to it
    for block in re.split(r"\n[ \t]*\n", text):
        code = re.fullmatch(r"\s*\x00code(\d+)\x00\s*", block)
        if code:
            _add_block(found, heading, "code", fences[int(code.group(1))], lead_open)
            lead_open = False
            continue
        lines = [re.sub(r"[ \t]+", " ", line).strip() for line in block.split("\n")]
        lines = [line for line in lines if line]
        if len(lines) >= 2 and all(" | " in line or line.startswith("|") for line in lines):
            header, rows, cells = _table(lines)
            # The header names every row's columns: the table's heading, as a title heads a section.
            table = Passage(heading=f"{heading} › {' '.join(header)}".strip(" ›"), sentences=rows, kind="table")
            table.block = _markdown_table(header, cells)
            _introduce(found, table, lead_open)
            found.append(table)
            lead_open = False
            continue
        prose: list[str] = []  # lines of the paragraph being read
        items: list[str] = []  # list items, each possibly wrapped over lines
        alone = len(lines) == 1 and (_is_short_heading(lines[0]) or _is_capitals(lines[0]))
        asked = _faq_question(lines)
        if asked is not None:
            # An FAQ's question heads its answer: matched like a heading, never quoted as the answer.
            _close(found, heading, prose, items, lead_open)
            base = {lv: h for lv, h in headings.items() if lv < 7}
            heading = " › ".join([*(base[lv] for lv in sorted(base)), asked])
            lines = [_ANSWER_MARK.sub("", line) for line in lines[1:]]
            if not lines:
                continue
        for line in lines:
            # A heading: Markdown's, a title line, or a short line standing alone between blank lines ("Leave policy").
            if line.startswith("#") or ((alone or is_title(line)) and not prose and not items):
                _close(found, heading, prose, items, lead_open)
                prose, items, lead_open = [], [], False
                level = len(line) - len(line.lstrip("#")) or (2 if headings else 1)
                headings = {lv: h for lv, h in headings.items() if lv < level} | {level: _clean(line.lstrip("#"))}
                heading = " › ".join(headings[lv] for lv in sorted(headings))
            elif _LIST_ITEM.match(line):
                items.append(line)
            elif items:
                items[-1] += " " + line
            else:
                prose.append(line)
        lead_open = _close(found, heading, prose, items, lead_open)
    return found


_QUESTION_MARK = re.compile(r"^(?:Q|Question)\s*[:.)-]\s*", re.I)
_ANSWER_MARK = re.compile(r"^(?:A|Answer)\s*[:.)-]\s*", re.I)


def _faq_question(lines: list[str]) -> str | None:
    """The question of an FAQ entry ("**Can I bring a guest?**", "Q: How do I take a bike?"), when a paragraph
    opens with one and its answer follows; else None. A question may wrap over lines ("Something is wrong.
    What should I do?")."""
    if len(lines) < 2:
        return None
    for end in range(min(len(lines) - 1, 3)):
        text = _clean(_QUESTION_MARK.sub("", " ".join(lines[: end + 1])))
        marked = bool(_QUESTION_MARK.match(lines[0])) or lines[0].startswith(("**", "__", "#"))
        if text.endswith("?") and (marked or _ANSWER_MARK.match(lines[end + 1])):
            return text.strip("*_ ")
        if text.endswith("?"):
            return text.strip("*_ ") if marked or len(text) < 120 else None
    return None


def _close(found: list[Passage], heading: str, prose: list[str], items: list[str], lead_open: bool) -> bool:
    """Adds a paragraph (and its list) as a passage; returns whether it ends in a lead-in awaiting a list, a table
    or a code block."""
    if not prose and not items:
        return lead_open
    if not prose and lead_open and found:
        passage = found[-1]  # a list after "...:" in a paragraph of its own joins that paragraph
    else:
        passage = Passage(heading=heading)
        found.append(passage)
        passage.sentences.extend(_sentence(sentence) for sentence in sentences(" ".join(prose)))
    lead = len(passage.sentences) - 1 if passage.sentences and passage.sentences[-1].text.endswith(":") else None
    if lead is None and items and not passage.sentences and heading:
        # A list straight under its heading ("## Steps"): the heading is its lead-in, so the list can be quoted.
        title = heading.rsplit(" › ", 1)[-1]
        passage.sentences.append(Sentence(text=f"{title}:", terms=frozenset(terms(heading))))
        lead = 0
    if lead is not None and items:
        passage.sentences[lead].ordered = bool(re.match(r"\d", items[0]))
    for item in items:
        cleaned = _clean(item)
        if lead is not None:
            passage.sentences[lead].items.append(cleaned)
        passage.sentences.extend(_sentence(sentence, lead=lead) for sentence in sentences(cleaned))
    return bool(passage.sentences) and passage.sentences[-1].text.endswith(":") and not items


def _introduces(sentence: Sentence) -> bool:
    """A lead-in ("...as follows:", "The table below lists the rates.") to the table or code that follows it."""
    return sentence.text.endswith(":") or bool(
        re.search(r"\b(?:following|below|table|as follows|this command|run)\b", sentence.text, re.I)
    )


def _introduce(found: list[Passage], block: Passage, lead_open: bool) -> None:
    """Gives the sentence that introduces a table or code block (its lead-in: the paragraph's last sentence when it
    ends in ":", else one that says "below" or "the following") that block, to quote with it."""
    before: Sentence | None = None
    if found and found[-1].kind == "prose" and found[-1].sentences:
        sentences_before = found[-1].sentences
        last = sentences_before[-1]
        if lead_open or last.text.endswith(":"):
            before = last
        else:
            before = next((s for s in reversed(sentences_before) if _introduces(s)), None)
    if before is None:
        # "Prices below apply to...", a few paragraphs up, still points at the first table below it.
        before = next((s for p in reversed(found) if p.kind == "prose" for s in p.sentences if _points_below(s)), None)
    if before is not None and not before.items and not before.block:
        before.block = block.block
        before.terms = before.terms | frozenset(terms(block.heading))


def _points_below(sentence: Sentence) -> bool:
    return not sentence.block and bool(re.search(r"\b(?:below|as follows|the following)\b", sentence.text, re.I))


def _add_block(found: list[Passage], heading: str, kind: str, markdown: str, lead_open: bool) -> None:
    """A code block: one passage, matched by its words (identifiers, commands) and its heading, quoted whole."""
    lines = markdown.split("\n")
    body = " ".join([lines[0].strip("`~ "), *lines[1:-1]])  # the language ("```python") is a word it is about
    passage = Passage(heading=heading, kind=kind, block=markdown)
    title = heading.rsplit(" › ", 1)[-1]
    passage.sentences.append(Sentence(text=f"{title}:" if title else "", terms=frozenset(terms(body)), block=markdown))
    _introduce(found, passage, lead_open)
    found.append(passage)


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        cells = (cells + [""] * len(header))[: len(header)]
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return "\n".join([line(header), "|" + " --- |" * len(header), *(line(row) for row in rows)])


def _table(lines: list[str]) -> tuple[list[str], list[Sentence], list[list[str]]]:
    """A table (Markdown's, or a Word table as the parser writes it, "a | b"), its first row the header: each row
    quoted with its headers ("Class: Economy; Flights: under six hours") and matched by its own cells."""
    rows = [[_clean(cell) for cell in line.strip().strip("|").split("|")] for line in lines]
    rows = [row for row in rows if not all(re.fullmatch(r":?-{2,}:?|", cell) for cell in row)]  # |---|---|
    header, body = rows[0], rows[1:]
    rows_read: list[Sentence] = []
    for row in body:
        pairs = [f"{name}: {cell}" if name else cell for name, cell in zip(header, row, strict=False) if cell]
        rows_read.append(Sentence(text="; ".join(pairs), terms=frozenset(terms(" ".join(row))), row=True))
    return header, rows_read, body


def _json_passages(text: str) -> list[Passage]:
    """Pretty-printed JSON by line: an object with a "name" or "title" is one passage under that name; elsewhere
    each long text value is a passage under its key. Short values are quoted as facts ("Bell Rock Lighthouse,
    built: 1810")."""
    found: list[Passage] = []
    record = Passage(heading="")
    for raw in text.split("\n"):
        line = raw.strip()
        if _JSON_STRUCTURE.match(line):
            if "{" in line or "}" in line:
                found.append(record)
                record = Passage(heading="")
            continue
        # A value can close its record on the same line ('"...in 2009." },'), where two chunks were joined.
        closes = re.search(r'(?<=")\s*[\]}][\]},\s]*$', line)
        line = line[: closes.start()] if closes else line
        pair = _JSON_PAIR.match(line)
        key, value = (_unescape(pair.group(1)), pair.group(2)) if pair else ("", line.rstrip(","))
        if value.endswith(("[", "{")):
            continue  # '"lighthouses": [' opens what follows
        value = _unescape(value.strip('"')) if value.startswith('"') else value
        label = key.replace("_", " ").strip()
        if key.lower() in _RECORD_NAMES and not record.heading:
            record.heading = value
            record.kind = "record"
        elif len(value) <= _SHORT_VALUE and not value.endswith("."):
            # Quoted with the record's name, matched by what it says ("built: 1810"): the name is the heading's.
            fact = f"{record.heading}, {label}: {value}" if record.heading else f"{label.capitalize()}: {value}"
            record.sentences.append(_sentence(fact if label else value, said=f"{label}: {value}"))
        elif record.heading or not label:
            record.sentences.extend(_sentence(s) for s in sentences(value))
        else:
            found.append(Passage(heading=label, sentences=[_sentence(s) for s in sentences(value)]))
        if closes:
            found.append(record)
            record = Passage(heading="")
    found.append(record)
    return found


def _unescape(value: str) -> str:
    try:
        return str(json.loads(f'"{value}"'))
    except ValueError:
        return value
