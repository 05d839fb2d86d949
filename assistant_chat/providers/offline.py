"""The built-in offline model: answers with no key and no network by quoting the passages that best answer.

Called only by the turn engine, like every provider; imports nothing from Django. It reads the numbered context
snippets of the request, scores their sentences against the latest user question (term overlap weighted by
rarity across the snippets), and answers with the best few sentences, each followed by its citation marker
`[n]`. It says plainly when the snippets hold nothing relevant. Deterministic: same request, same answer.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import Counter
from collections.abc import AsyncGenerator

from .base import ContextSnippet, Delta, Finish, ProviderRequest, StreamItem, Usage

MODEL_ID = "offline-extractive-1"
NO_ANSWER = "I could not find an answer to that in the assistant's files."
MAX_SENTENCES = 3

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])|\n{2,}|\n(?=[#*\-•\d])")
_PIECE = re.compile(r"\S+\s*")
_STOP = frozenset(
    """a about above after again against all am an and any are as at be because been before being below between both
    but by can could did do does doing down during each few for from further had has have having he her here hers him
    his how i if in into is it its itself just me more most my no nor not now of off on once only or other our ours out
    over own same she should so some such than that the their theirs them then there these they this those through to
    too under until up very was we were what when where which while who whom why will with would you your yours tell
    please know explain describe give list""".split()
)


def _terms(text: str) -> list[str]:
    return [_stem(word) for word in (w.lower() for w in _WORD.findall(text)) if word not in _STOP]


def _names(question: str) -> set[str]:
    """Capitalised words after the first: names the answer must be about."""
    words = _WORD.findall(question)[1:]
    return {_stem(w.lower()) for w in words if w[:1].isupper() and w.lower() not in _STOP}


def _stem(word: str) -> str:
    # A light suffix strip so that "otters" meets "otter" and "erupted" meets "erupts"; good enough for scoring.
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


_LINE_END_STRUCTURE = re.compile(r'[,{}\[\]"]\s*$')
_JSON_PAIR = re.compile(r'^\s*"[^"]{1,80}"\s*:\s*"?(.*?)"?\s*,?\s*$', re.DOTALL)
_TITLE_WORD = re.compile(r"^[A-Z0-9][\w'’-]*$|^(?:of|the|and|a|an|in|on|to|for|-|–|&|:)$")


def _sentences(snippet: ContextSnippet) -> list[str]:
    """Readable sentences of a snippet: headings, title lines and JSON syntax taken off."""
    sentences: list[str] = []
    for block in _SENTENCE.split(re.sub(r"[ \t]+", " ", snippet.text)):
        lines = [line.strip() for line in block.split("\n") if line.strip()]
        # A line that ends in JSON structure, or a title line (no final stop, mostly capitalised), stands alone.
        current: list[str] = []
        for line in lines:
            if _LINE_END_STRUCTURE.search(line) or _is_title(line):
                _flush(current, sentences)
                sentences.append(line)
                continue
            current.append(line)
        _flush(current, sentences)
    cleaned = [_unjson(sentence) for sentence in sentences]
    return [s for s in cleaned if len(s) > 20 and not s.startswith("#") and not _is_title(s)]


def _flush(current: list[str], sentences: list[str]) -> None:
    if current:
        sentences.append(" ".join(current))
        current.clear()


def _is_title(line: str) -> bool:
    if line.endswith((".", "!", "?", ":", ";")) or len(line) > 120:
        return False
    words = line.split()
    return len(words) >= 2 and sum(bool(_TITLE_WORD.match(w)) for w in words) >= 0.8 * len(words)


def _unjson(sentence: str) -> str:
    match = _JSON_PAIR.match(sentence)
    text = match.group(1) if match else sentence.strip(" {}[],")
    text = re.sub(r"^(?:[-*+•]|\d{1,3}[.)])\s+", "", text.strip())  # list markers
    text = re.sub(r"(\*\*|__|`)", "", text)  # Markdown emphasis and code marks
    return text.strip().rstrip('"').strip()


def compose_answer(question: str, snippets: tuple[ContextSnippet, ...]) -> str:
    """The answer text with `[n]` markers, or NO_ANSWER."""
    wanted = set(_terms(question))
    if not wanted or not snippets:
        return NO_ANSWER
    candidates: list[tuple[float, int, int, str, int]] = []
    document_frequency: Counter[str] = Counter()
    per_sentence: list[tuple[int, int, str, set[str]]] = []
    for snippet_index, snippet in enumerate(snippets):
        for sentence_index, sentence in enumerate(_sentences(snippet)):
            terms = set(_terms(sentence))
            per_sentence.append((snippet_index, sentence_index, sentence, terms))
            document_frequency.update(terms & wanted)
    total = max(len(per_sentence), 1)
    for snippet_index, sentence_index, sentence, terms in per_sentence:
        matched = terms & wanted
        if not matched:
            continue
        score = sum(math.log(1 + total / document_frequency[term]) for term in matched)
        score *= 1.0 - 0.03 * snippet_index  # retrieval already ranked the snippets
        candidates.append((score, snippet_index, sentence_index, sentence, snippets[snippet_index].number))
    if not candidates:
        return NO_ANSWER
    best = max(candidate[0] for candidate in candidates)
    # Answer only when the snippets cover what was asked: at least half of the question's terms, and every name
    # in it ("the capital of Peru" must not be answered with "the capital of printing").
    available = set().union(*(set(_terms(snippet.text)) for snippet in snippets))
    if len(wanted & available) * 2 < len(wanted) or not _names(question) <= available:
        return NO_ANSWER
    chosen = sorted(candidates, key=lambda c: (-c[0], c[1], c[2]))
    picked: list[tuple[int, int, str, int]] = []
    seen: set[str] = set()
    for score, snippet_index, sentence_index, sentence, number in chosen:
        # Keep sentences that answer nearly as well as the best; drop weak matches and repeats (chunks overlap).
        if score < best * 0.5 or sentence in seen:
            continue
        seen.add(sentence)
        picked.append((snippet_index, sentence_index, sentence, number))
        if len(picked) == MAX_SENTENCES:
            break
    picked.sort(key=lambda item: (item[0], item[1]))  # read in document order
    return " ".join(f"{sentence.rstrip()} [{number}]" for _s, _i, sentence, number in picked)


def _estimate_tokens(text: str) -> int:
    return len(_PIECE.findall(text))


class OfflineProvider:
    """Streams `compose_answer` word by word, yielding to the event loop between words; with `words_per_second`
    it paces the words like a hosted model would (the demo sets this so streaming is visible)."""

    name = "offline"

    def __init__(self, words_per_second: float = 0.0) -> None:
        self.pause = 1.0 / words_per_second if words_per_second > 0 else 0.0

    async def stream(self, request: ProviderRequest) -> AsyncGenerator[StreamItem, None]:
        question = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
        answer = compose_answer(question, request.context)
        for index, piece in enumerate(_PIECE.findall(answer)):
            if index and self.pause:
                await asyncio.sleep(self.pause)
            yield Delta(piece)
            await asyncio.sleep(0)  # a real stream: other tasks (and a cancel) get their turn between words
        prompt = sum(_estimate_tokens(m.content) for m in request.messages)
        yield Finish(
            reason="stop",
            usage=Usage(prompt_tokens=prompt, completion_tokens=_estimate_tokens(answer)),
            model=MODEL_ID,
        )
