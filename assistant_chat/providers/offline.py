"""The built-in offline model: answers with no key and no network by quoting the passages that best answer.

Called only by the turn engine, like every provider; imports nothing from Django. It reads the numbered context
snippets of the request as passages (`offline_reading`), finds the passage that best answers the latest user
question, and answers with its best few sentences, each followed by its citation marker `[n]`. It says plainly
when the snippets hold nothing relevant. Deterministic: same request, same answer.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import AsyncGenerator, Callable

from . import offline_reading as reading
from .base import ContextSnippet, Delta, Finish, ProviderRequest, StreamItem, Usage

MODEL_ID = "offline-extractive-1"
NO_ANSWER = "I could not find an answer to that in the assistant's files."
MAX_SENTENCES = 3
_PIECE = re.compile(r"\S+\s*")

# Words a question asks with and files answer with ("who invented" is answered by "began developing"), as stems;
# a match through one of these counts for less than the word itself.
_RELATED: dict[str, tuple[str, ...]] = {
    "invent": ("develop", "devis", "creat", "design", "pioneer"),
    "discover": ("found", "identify", "invent"),
    "make": ("produc", "creat", "turn", "build", "form"),
    "made": ("produc", "creat", "turn", "built", "form"),
    "build": ("built", "construct"),
    "built": ("build", "construct"),
    "live": ("life", "lifespan", "surviv"),
    "threat": ("danger", "risk", "harm"),
    "cost": ("price", "rate", "pay", "paid"),
    "pay": ("paid", "reimburs", "cover"),
    "paid": ("pay", "reimburs", "cover"),
    "long": ("length", "last"),
    "tall": ("high", "height"),
    "high": ("tall", "height"),
    "big": ("large", "size"),
    "large": ("big", "size"),
    "old": ("age", "ancient"),
    "start": ("begin", "began", "open", "found"),
    "begin": ("began", "begun", "start"),
    "write": ("wrote", "written", "author"),
    "wrote": ("write", "written", "author"),
    "fly": ("flight", "flew"),
    "go": ("went", "gone"),
    "see": ("saw", "seen", "visible"),
    "think": ("thought",),
    "bring": ("brought",),
    "keep": ("kept",),
    "leave": ("left",),
    "lead": ("led",),
    "buy": ("bought",),
    "teach": ("taught",),
    "die": ("death", "dead", "died"),
    "weigh": ("weight", "heav"),
    "heavy": ("weight",),
}
_RELATED_WEIGHT = 0.7
_CONTEXT_WEIGHT = 0.4  # a term of the question before, in a conversation

# What kind of thing a question asks for, and what a sentence holding one looks like.
_NUMBER = (
    r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|hundred"
    r"|thousand|million|billion|dozen|half|third|quarter)\b"
)
_DATE = (
    r"\b(?:1\d{3}|20\d{2})s?\b|\bcentur(?:y|ies)\b|\b(?:BC|AD)\b"
    r"|\b(?:January|February|March|April|May|June|July|August|September|October|November|December)\b"
)
_CUES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        r"when|what year|which year|what date",
        re.compile(_DATE),
    ),
    (
        r"how (?:many|much|long|far|old|big|tall|high|deep|often|large|fast)|what (?:percentage|share|fraction)",
        re.compile(_NUMBER, re.I),
    ),
    (r"who|whom|whose", re.compile(r"\b[A-Z][a-z]+(?: (?:von |van |de |da )?[A-Z][a-z-]+)+|\bby [A-Z]")),
    (
        r"where",
        re.compile(r"\b(?:in|at|near|off|on) (?:the )?[A-Z][a-z]|\b(?:direction|located|location|place|distance)\b"),
    ),
    (r"why", re.compile(r"\b(?:because|due to|comes? from|caused?|so that|thanks to|as a result)\b", re.I)),
)


def _cue(question: str) -> tuple[re.Pattern[str] | None, str]:
    """What the question's first question word ("where", even inside "how do bees tell each other where...")
    asks for, and the question without those words ("how long" asks for a number, not for "long")."""
    found = [(m, answer) for asked, answer in _CUES if (m := re.search(rf"\b(?:{asked})\b", question, re.I))]
    if not found:
        return None, question
    match, answer = min(found, key=lambda f: f[0].start())
    return answer, question[: match.start()] + question[match.end() :]


class _Question:
    """A question's terms, with the related words that may stand for them, the names it is about, and what kind
    of answer it wants; the question before it, in a conversation, lends its terms as context ("How do I reset
    the router?" "How long does it take?")."""

    def __init__(self, text: str, before: str = "") -> None:
        self.cue, rest = _cue(text)
        own = reading.terms(rest)
        earlier = reading.terms(_cue(before)[1]) if before else []
        if not own:  # nothing but question words and "it": the question is still about what was asked before
            own, earlier = earlier, []
        self.terms = list(dict.fromkeys(own))
        self.context = [term for term in dict.fromkeys(earlier) if term not in self.terms]
        self._weights = {term: 1.0 for term in self.terms} | {term: _CONTEXT_WEIGHT for term in self.context}
        words = re.findall(r"[^\W_]+", text)[1:]  # capitalised words after the first: names it is about
        self.names = {reading.stem(w.lower()) for w in words if w[:1].isupper() and w.lower() not in reading.STOP}
        self._memo: dict[str, dict[str, float]] = {}

    def matched(self, words: frozenset[str]) -> dict[str, float]:
        """The question's terms these words answer, each with its weight (1, or less through a related word)."""
        found: dict[str, float] = {}
        for word in words:
            for term, weight in self._word(word).items():
                found[term] = max(found.get(term, 0.0), weight)
        return found

    def _word(self, word: str) -> dict[str, float]:
        if word not in self._memo:
            hits: dict[str, float] = {}
            for term, weight in self._weights.items():
                if reading.same_family(term, word):
                    hits[term] = weight
                elif any(reading.same_family(related, word) for related in _RELATED.get(term, ())):
                    hits[term] = weight * _RELATED_WEIGHT
            self._memo[word] = hits
        return self._memo[word]


class _Read:
    """One passage of one snippet, with what it answers."""

    def __init__(self, order: int, snippet_index: int, number: int, passage: reading.Passage, question: _Question):
        self.order, self.snippet_index, self.number, self.passage = order, snippet_index, number, passage
        self.heading = question.matched(passage.heading_terms)
        self.per_sentence = [question.matched(sentence.terms) for sentence in passage.sentences]
        self.cued = [bool(question.cue and question.cue.search(s.text)) for s in passage.sentences]
        # What the passage answers as a whole, its heading included.
        self.answers = question.matched(passage.heading_terms.union(*(s.terms for s in passage.sentences)))


def compose_answer(question: str, snippets: tuple[ContextSnippet, ...], before: str = "") -> str:
    """The answer text with `[n]` markers, or NO_ANSWER.

    Reads the snippets as passages, takes the passage that answers most of the question (terms weighted by how
    rare they are among the passages, headings included, and a hint for the kind of answer asked for: a year, a
    number, a name, a place, a reason), and quotes its best sentences; a second passage only when it answers a
    good part of the question the first does not."""
    asked = _Question(question, before)
    if not asked.terms or not snippets:
        return NO_ANSWER
    read: list[_Read] = []
    for snippet_index, snippet in enumerate(snippets):
        json_like = snippet.file_name.lower().endswith(".json")
        for passage in reading.passages(snippet.text, json_like=json_like):
            read.append(_Read(len(read), snippet_index, snippet.number, passage, asked))
    main = set(asked.terms)
    everything = {term for one in read for term in one.answers if term in main}
    # Answer only when the snippets cover what was asked: most of the question's terms, and every name in it
    # ("the capital of Peru" must not be answered with "the capital of printing", nor "the refund policy" with
    # the leave policy).
    if len(everything) * 2 <= len(asked.terms) or not asked.names <= everything:
        return NO_ANSWER
    frequency = {term: sum(term in one.answers for one in read) for term in asked.terms + asked.context}
    rarity = {term: math.log(1 + len(read) / count) for term, count in frequency.items() if count}
    cue_bonus = 0.5 * sum(rarity.get(term, 0.0) for term in main) / max(len(everything), 1)

    def weight(found: dict[str, float]) -> float:
        return sum(rarity[term] * w for term, w in found.items())

    def passage_score(one: _Read) -> float:
        score = weight(one.answers) + (0.5 * cue_bonus if any(one.cued) else 0.0)
        if not asked.names <= set(one.answers):
            score *= 0.5  # about something else with the same words
        return score * (1.0 - 0.02 * one.snippet_index)  # retrieval already ranked the snippets

    ranked = sorted(read, key=lambda one: (-passage_score(one), one.order))
    best = ranked[0]
    if len(main.intersection(best.answers)) * 2 < len(asked.terms):
        return NO_ANSWER
    chosen = [best]
    total = weight({term: 1.0 for term in rarity if term in main})
    for other in ranked[1:3]:
        new = {t: w for t, w in other.answers.items() if t not in best.answers}
        if passage_score(other) >= 0.7 * passage_score(best) and weight(new) >= 0.25 * total:
            chosen.append(other)
            break
    return _quote(chosen, weight, cue_bonus, asked.names)


def _quote(chosen: list[_Read], weight: Callable[[dict[str, float]], float], cue_bonus: float, names: set[str]) -> str:
    """The best sentences of the chosen passages, in reading order, each followed by its citation marker."""
    candidates: list[tuple[float, int, int, bool]] = []  # score, passage order, sentence index, goes on from the last
    for passage in chosen:
        scores: list[float] = []
        for index, found in enumerate(passage.per_sentence):
            # A name the heading already gives ("Mars" under "Mars › Orbit and atmosphere") says what the passage
            # is about, not which of its sentences answers.
            topic = {t for t in found if t in passage.heading and t in names}
            own = {t: w * (0.3 if t in topic else 1.0) for t, w in found.items()}
            # A number in a sentence that only names the topic ("...25 degrees, Mars has seasons") answers
            # something else than "how long is a year on Mars".
            cued = passage.cued[index] and not (found and topic == set(found))
            scores.append(weight(own) + (cue_bonus if cued else 0.0))
            if found:
                candidates.append((scores[index], passage.order, index, False))
            elif _beside_a_match(passage, index):  # goes on from the sentence before: quoted only after it
                candidates.append((0.5 * scores[index - 1] + scores[index], passage.order, index, True))
    if not candidates:  # the heading answered, the sentences under it say what
        candidates = [(0.0, chosen[0].order, 0, False)]
    top = max(candidate[0] for candidate in candidates)
    by_order = {passage.order: passage for passage in chosen}
    picked: list[tuple[int, int]] = []
    taken: set[tuple[int, int]] = set()
    for score, order, index, follows in sorted(candidates, key=lambda c: (-c[0], c[1], c[2])):
        sentence = by_order[order].passage.sentences[index]
        if score < 0.45 * top or (order, index) in taken or (follows and (order, index - 1) not in picked):
            continue
        if sentence.lead is not None and (order, sentence.lead) in taken:
            continue  # its list is already quoted
        items = {(order, i) for i, s in enumerate(by_order[order].passage.sentences) if s.lead == index}
        if items & taken:
            continue  # an item already answers: no need for the whole list
        picked.append((order, index))
        taken.add((order, index))
        taken.update(items)  # the lead-in quotes its items
        if len(picked) == MAX_SENTENCES:
            break
    picked.sort()
    return " ".join(
        f"{by_order[order].passage.sentences[index].quoted()} [{by_order[order].number}]" for order, index in picked
    )


def _beside_a_match(passage: _Read, index: int) -> bool:
    """A sentence holding the kind of answer asked for, right after one that matches the question ("...performs
    a waggle dance." "The angle of the run shows the direction...")."""
    return passage.cued[index] and index > 0 and bool(passage.per_sentence[index - 1])


def _estimate_tokens(text: str) -> int:
    return len(_PIECE.findall(text))


class OfflineProvider:
    """Streams `compose_answer` word by word, yielding to the event loop between words; with `words_per_second`
    it paces the words like a hosted model would (the demo sets this so streaming is visible)."""

    name = "offline"

    def __init__(self, words_per_second: float = 0.0) -> None:
        self.pause = 1.0 / words_per_second if words_per_second > 0 else 0.0

    async def stream(self, request: ProviderRequest) -> AsyncGenerator[StreamItem, None]:
        # In a room a question reads "Alice: ..."; the name is who asks, not what about.
        asked = [
            m.content.removeprefix(f"{m.speaker}: ") if m.speaker else m.content
            for m in request.messages
            if m.role == "user"
        ]
        question, before = (asked[-1] if asked else ""), (asked[-2] if len(asked) > 1 else "")
        # Reading every snippet takes milliseconds of CPU: off the event loop, as other rooms are streaming.
        answer = await asyncio.to_thread(compose_answer, question, request.context, before)
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
