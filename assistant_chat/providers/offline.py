"""The built-in offline model: answers with no key and no network by quoting the passages that best answer.

Called only by the turn engine, like every provider; imports nothing from Django. It reads the numbered context
snippets of the request as passages (`offline_reading`), finds the passage that best answers the latest user
question, and answers with its best few sentences, each followed by its citation marker `[n]`. It says plainly
when the snippets hold nothing relevant. Deterministic: same request, same answer.
"""

from __future__ import annotations

import asyncio
import functools
import math
import re
from collections.abc import AsyncGenerator, Callable
from typing import TYPE_CHECKING

from . import offline_reading as reading
from .base import ContextSnippet, Delta, Finish, ProviderRequest, StreamItem, Usage

if TYPE_CHECKING:
    import numpy as np

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
_TIME = r"\b\d{1,2}[:.]\d{2}\b|\b\d{1,2} ?(?:am|pm|a\.m\.|p\.m\.)|\b(?:noon|midnight|o'clock)\b"
_CUES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        r"what time|at what time|how early|how late|until when",
        re.compile(_TIME, re.I),
    ),
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


# A question that asks for several things at once ("What kinds of...", "What are the steps..."): a list's lead-in,
# a table or a code block answers it whole.
_ENUMERATION = re.compile(
    r"\b(?:kinds?|types?|sorts?|consists?|consisting|made up of|includes?|components?|parts|steps|list|options|"
    r"ways|rates|prices|fees|which .+ are|what are|what .+ are there|which .+ (?:is|are) there|show me|example|command|"
    r"code|script|how (?:do|can|should) (?:i|we|you)|how to|what .*\bneed|what .+ (?:bring|pack|take))\b",
    re.I,
)
# "How do bees dance?": asks how something goes, which the sentences after the first one that answers go on to say.
_MANNER = re.compile(r"^\s*how (?:do|does|did|can|could|is|are|should|would|to)\b", re.I)
_NEGATION = re.compile(r"n't\b|\b(?:not|never|no|nor|without)\b", re.I)
# A question about how things were ("What did a permit cost before?"): a superseded section may answer it.
_PAST = re.compile(
    r"\b(?:before|previous(?:ly)?|old(?:er)?|used to|earlier|former(?:ly)?|superseded|withdrawn|prior|last year|"
    r"version 1|originally)\b",
    re.I,
)
_SUPERSEDED_WEIGHT = 0.3


# How a request is put, not what it is about: "Show me the backup script", "Can I see the price list?".
_REQUEST = re.compile(
    r"^\s*(?:please\s+)?(?:(?:show|give|tell|send|find)\s+me|(?:can|could|may)\s+(?:i|we|you)\s+(?:see|have|get))\b",
    re.I,
)


_CALENDAR = frozenset(
    "monday tuesday wednesday thursday friday saturday sunday january february march april may june july august "
    "september october november december".split()
)


def _cue(question: str) -> tuple[re.Pattern[str] | None, str]:
    """What the question's first question word ("where", even inside "how do bees tell each other where...")
    asks for, and the question without those words ("how long" asks for a number, not for "long") nor the way
    the request is put ("show me")."""
    question = _REQUEST.sub("", question)
    found = [(m, answer) for asked, answer in _CUES if (m := re.search(rf"\b(?:{asked})\b", question, re.I))]
    if not found:
        return None, question
    match, answer = min(found, key=lambda f: f[0].start())
    return answer, question[: match.start()] + question[match.end() :]


# A question that leans on the one before: it starts by going on ("And for...", "What about..."), or asks about
# "it" or "they" with at most a couple of words of its own ("How long does it take?").
_GOES_ON = re.compile(r"^\s*(?:and|also|so|then|but|what about|how about)\b", re.I)
_ANAPHORA = re.compile(r"\b(?:it|its|they|them|their|this|these|those|he|him|his|she|her)\b", re.I)


def is_follow_up(question: str) -> bool:
    """Whether a question is read with the one before it. Only then does the earlier question lend its terms (and
    meaning): a new question about something else must not be answered with the last answer's passage."""
    own = reading.terms(_cue(question)[1])
    if not own or _GOES_ON.match(question):
        return True
    names = [w for w in re.findall(r"[^\W_]+", question)[1:] if w[:1].isupper()]
    return bool(_ANAPHORA.search(question)) and len(own) <= 2 and not names


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
        # Days and months are capitalised but name no entity the files must hold ("on a Saturday": weekdays only).
        self.names = {
            reading.stem(w.lower())
            for w in words
            if w[:1].isupper() and w.lower() not in reading.STOP and w.lower() not in _CALENDAR
        }
        self.enumeration = bool(_ENUMERATION.search(text))
        self.manner = bool(_MANNER.match(text))
        self.negated = bool(_NEGATION.search(text))
        self.past = bool(_PAST.search(text))
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
    """One passage of one snippet, with what it answers: by words (the question's terms it holds) and by meaning
    (the cosine of its embedding with the question's, for the passage and for each sentence)."""

    def __init__(self, order: int, snippet_index: int, number: int, passage: reading.Passage, question: _Question):
        self.order, self.snippet_index, self.number, self.passage = order, snippet_index, number, passage
        self.heading = question.matched(passage.heading_terms)
        self.per_sentence = [question.matched(sentence.terms) for sentence in passage.sentences]
        # A list's lead-in answers, at half weight, what its items answer: several items matching a little each
        # ("what does my child need to pack": lunch, water bottle, coat) make the whole list the answer.
        for index, sentence in enumerate(passage.sentences):
            if sentence.items:
                found = dict(self.per_sentence[index])
                for item, item_found in zip(passage.sentences, self.per_sentence, strict=True):
                    if item.lead == index:
                        for term, w in item_found.items():
                            found[term] = max(found.get(term, 0.0), 0.5 * w)
                self.per_sentence[index] = found
        self.cued = [bool(question.cue and question.cue.search(s.text)) for s in passage.sentences]
        self.manner = question.manner
        if question.negated:  # "What shouldn't I bring?" is answered by "Please do not send:"
            self.cued = [
                cued or bool(_NEGATION.search(s.text)) for cued, s in zip(self.cued, passage.sentences, strict=True)
            ]
        if question.enumeration:  # a lead-in with its list, table or code is the kind of answer asked for
            self.cued = [cued or bool(s.items or s.block) for cued, s in zip(self.cued, passage.sentences, strict=True)]
        # What the passage answers as a whole, its heading included.
        self.answers = question.matched(passage.heading_terms.union(*(s.terms for s in passage.sentences)))
        self.whole = 0.0  # the passage as a whole, under its heading
        self.topic = 0.0  # its heading alone: what every sentence under it shares
        self.meaning = 0.0  # the closer of the whole and its closest sentence
        self.sentence_meaning = [0.0] * len(passage.sentences)

    def texts(self) -> list[str]:
        """What is embedded: the passage under its heading, the heading, then each sentence (with its list, table
        or code) without the name it is filed under ("Cape Hatteras Lighthouse, built: 1870" as "built: 1870")."""
        heading = self.passage.heading
        whole = " ".join([heading, *(s.text for s in self.passage.sentences), self.passage.block])
        own = [s.text.removeprefix(f"{heading}, ") if heading else s.text for s in self.passage.sentences]
        return [whole[:_EMBED_CHARS], heading] + [
            f"{text} {' '.join(s.items)} {s.block}"[:_EMBED_CHARS]
            for text, s in zip(own, self.passage.sentences, strict=True)
        ]

    def said(self, index: int) -> float:
        """How much closer to the question a sentence is than its heading alone: what it says itself."""
        return max(self.sentence_meaning[index] - max(self.topic, 0.0), 0.0)


Embed = Callable[[list[str]], "np.ndarray"]
_EMBED_CHARS = 2000
# Closeness in meaning above what unrelated text reaches anyway (~0.15 with these embeddings), weighed against the
# question's terms: a passage as close as a paraphrase gets (~0.6) counts about half as much as holding every term.
_MEANING_WEIGHT = 1.0
_MEANING_FLOOR = 0.15
_ANSWERS_BY_MEANING = 0.3  # a passage this close answers even when it shares few words with the question
_SENTENCE_BY_MEANING = 0.3  # a sentence this close is quoted even when it shares no word with the question...
_GOES_ON_MEANING = 0.15  # ...and a sentence this close may follow one that answers a "how does..." question
_SHORTEST_MEANT = 5  # words: a shorter sentence (a title on the line of a PDF) is weighed by its words alone
_SAYS_MORE = 0.15  # ...if it is this much closer than its heading alone (not just naming the topic)


@functools.cache
def _offline_embed() -> Embed | None:
    """The built-in embedder's `embed`, or None where it cannot load (then words alone decide)."""
    try:
        from ..embedders.offline import OfflineEmbedder

        embedder = OfflineEmbedder()
        embedder.embed(["warm up"])  # loads the weights once, here, not in the middle of a first answer
    except Exception:  # noqa: BLE001 - an embedder that cannot load leaves the model answering by words
        return None
    return embedder.embed


def _weigh_meaning(read: list[_Read], query: str, embed: Embed | None) -> None:
    if embed is None or not read:
        return
    texts = [query]
    for one in read:
        texts.extend(one.texts())
    vectors = embed(texts)
    similarity = [float(value) for value in vectors[1:] @ vectors[0]]
    at = 0
    for one in read:
        one.whole, one.topic = similarity[at], (similarity[at + 1] if one.passage.heading else 0.0)
        one.sentence_meaning = similarity[at + 2 : at + 2 + len(one.passage.sentences)]
        # A passage answers as well as its closest sentence does ("the oldest lighthouse still in use"), or as a
        # whole where no one sentence says it all.
        one.meaning = max([one.whole, *one.sentence_meaning])
        at += 2 + len(one.passage.sentences)


def compose_answer(
    question: str, snippets: tuple[ContextSnippet, ...], before: str = "", *, embed: Embed | None | bool = True
) -> str:
    """The answer text with `[n]` markers, or NO_ANSWER.

    Reads the snippets as passages and takes the passage that answers the question best, by its words (terms
    weighted by how rare they are among the passages, headings included, and a hint for the kind of answer asked
    for: a year, a number, a name, a place, a reason) and by its meaning (embeddings: "How do bees communicate
    where flowers are?" is answered by the waggle dance); then quotes its best sentences, a list, table or code
    block whole as Markdown where that is what answers; a second passage only when it answers a good part of the
    question the first does not. `before` (the previous question) counts only when this one is a follow-up.
    `embed` True uses the built-in embedder; None or False answers by words alone."""
    embedder = _offline_embed() if embed is True else (embed or None)
    follow_up = bool(before) and is_follow_up(question)
    asked = _Question(question, before if follow_up else "")
    if not asked.terms or not snippets:
        return NO_ANSWER
    read: list[_Read] = []
    for snippet_index, snippet in enumerate(snippets):
        json_like = snippet.file_name.lower().endswith(".json")
        for passage in reading.passages(snippet.text, json_like=json_like):
            read.append(_Read(len(read), snippet_index, snippet.number, passage, asked))
    main = set(asked.terms)
    everything = {term for one in read for term in one.answers if term in main}
    # Answer only when the snippets hold every name in the question ("the capital of Peru" must not be answered
    # with "the capital of printing") and either most of its terms or a passage close to it in meaning.
    if not read or not asked.names <= everything:
        return NO_ANSWER
    _weigh_meaning(read, f"{before} {question}" if follow_up else question, embedder)
    closest = max(one.whole for one in read)
    by_words = len(everything) * 2 > len(asked.terms)
    if not by_words and not (closest >= _ANSWERS_BY_MEANING and everything):
        return NO_ANSWER
    frequency = {term: sum(term in one.answers for one in read) for term in asked.terms + asked.context}
    rarity = {term: math.log(1 + len(read) / count) for term, count in frequency.items() if count}
    cue_bonus = 0.5 * sum(rarity.get(term, 0.0) for term in main) / max(len(everything), 1)
    total = sum(math.log(1 + len(read) / max(frequency.get(term, 0), 1)) for term in main)

    def weight(found: dict[str, float]) -> float:
        return sum(rarity[term] * w for term, w in found.items())

    def passage_score(one: _Read) -> float:
        score = weight(one.answers) + (0.5 * cue_bonus if any(one.cued) else 0.0)
        if asked.enumeration and (one.passage.block or any(s.items or s.block for s in one.passage.sentences)):
            score += 0.5 * cue_bonus  # "how do I...", "what are the...": steps, a table or code answer it
        score += _MEANING_WEIGHT * total * max(one.meaning - _MEANING_FLOOR, 0.0)
        if not asked.names <= set(one.answers):
            score *= 0.5  # about something else with the same words
        if one.passage.superseded and not asked.past:
            score *= _SUPERSEDED_WEIGHT  # kept for reference: the rule in force answers
        return score * (1.0 - 0.02 * one.snippet_index)  # retrieval already ranked the snippets

    ranked = sorted(read, key=lambda one: (-passage_score(one), one.order))
    best = ranked[0]
    if len(main.intersection(best.answers)) * 2 < len(asked.terms) and best.whole < _ANSWERS_BY_MEANING:
        return NO_ANSWER
    chosen = [best]
    for other in ranked[1:3]:
        new = {t: w for t, w in other.answers.items() if t not in best.answers}
        # What it adds must be said by a sentence close to the question, not just hold one of its words.
        close = embedder is None or any(
            meaning >= _SENTENCE_BY_MEANING and set(found) & set(new)
            for found, meaning in zip(other.per_sentence, other.sentence_meaning, strict=True)
        )
        if passage_score(other) >= 0.7 * passage_score(best) and weight(new) >= 0.25 * total and close:
            chosen.append(other)
            break
    meaning_weight = _MEANING_WEIGHT * total if embedder else 0.0
    return _quote(chosen, weight, cue_bonus, asked.names, meaning_weight)


def _quote(
    chosen: list[_Read],
    weight: Callable[[dict[str, float]], float],
    cue_bonus: float,
    names: set[str],
    meaning_weight: float,
) -> str:
    """The best sentences of the chosen passages, in reading order, each followed by its citation marker; a
    list, table or code block as Markdown after the sentence that introduces it."""
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
            meaning, said = passage.sentence_meaning[index], passage.said(index)
            if len(passage.passage.sentences[index].text.split()) < _SHORTEST_MEANT:
                meaning = said = 0.0  # a few words ("Hooding and jesses.") embed too loosely to tell
            scores.append(weight(own) + (cue_bonus if cued else 0.0) + meaning_weight * said)
            if found or (meaning_weight and meaning >= _SENTENCE_BY_MEANING and said >= _SAYS_MORE):
                candidates.append((scores[index], passage.order, index, False))
            elif _beside_a_match(passage, index):  # goes on from the sentence before: quoted only after it
                candidates.append((0.5 * scores[index - 1] + scores[index], passage.order, index, True))
    if not candidates:  # the heading answered, the sentences under it say what
        candidates = [(0.0, chosen[0].order, 0, False)]
    top = max(candidate[0] for candidate in candidates)
    by_order = {passage.order: passage for passage in chosen}
    picked: list[tuple[int, int]] = []
    taken: set[tuple[int, int]] = set()
    queue = sorted(candidates, key=lambda c: (-c[0], c[1], c[2]))
    waiting: list[tuple[float, int, int, bool]] = []  # sentences that go on from one not picked yet
    while queue and len(picked) < MAX_SENTENCES:
        score, order, index, follows = queue.pop(0)
        sentence = by_order[order].passage.sentences[index]
        if score < 0.45 * top or (order, index) in taken:
            continue
        if follows and (order, index - 1) not in picked:
            waiting.append((score, order, index, follows))
            continue
        if sentence.lead is not None and (order, sentence.lead) in taken:
            continue  # its list is already quoted
        items = {(order, i) for i, s in enumerate(by_order[order].passage.sentences) if s.lead == index}
        if items & taken:
            continue  # an item already answers: no need for the whole list
        picked.append((order, index))
        taken.add((order, index))
        taken.update(items)  # the lead-in quotes its items
        # The sentence that goes on from this one is next in line.
        queue = [c for c in waiting if (c[1], c[2] - 1) == (order, index)] + queue
        waiting = [c for c in waiting if (c[1], c[2] - 1) != (order, index)]
    # Two items or more of one list answer: the list is the answer, quoted whole after its lead-in.
    leads: dict[tuple[int, int], int] = {}
    for order, index in picked:
        lead = by_order[order].passage.sentences[index].lead
        if lead is not None:
            leads[(order, lead)] = leads.get((order, lead), 0) + 1
    for (order, lead), count in leads.items():
        if count > 1:
            picked = [(o, i) for o, i in picked if not (o == order and by_order[o].passage.sentences[i].lead == lead)]
            picked.append((order, lead))
    picked.sort()
    pieces: list[tuple[str, str, int]] = []  # sentence, block, citation number
    quoted_blocks: set[str] = set()
    tables_whole: set[int] = set()
    for order, index in picked:
        one = by_order[order]
        sentence = one.passage.sentences[index]
        if sentence.row:
            if order in tables_whole or (not one.per_sentence[index] and not _whole_table(one, weight)):
                continue  # the table is quoted already, or another of its rows is the one that answers
            if _whole_table(one, weight):
                tables_whole.add(order)
                if one.passage.block not in quoted_blocks:
                    quoted_blocks.add(one.passage.block)
                    pieces.append((_table_lead(one), one.passage.block, one.number))
                continue
        text, block = sentence.quoted()
        if block and block in quoted_blocks:
            block = ""  # the lead-in before a code block, and the block's own passage: quoted once
            if not text or text.endswith(":"):
                continue
        quoted_blocks.add(block)
        if one.passage.kind == "record" and not sentence.row and one.passage.heading.lower() not in text.lower():
            text = f"{one.passage.heading}: {text}"  # "Tower of Hercules: A Roman lighthouse that is the oldest..."
        pieces.append((text, block, one.number))
    return _join(pieces)


def _whole_table(one: _Read, weight: Callable[[dict[str, float]], float]) -> bool:
    """Whether a table answers as a whole ("What are the rates?"): no row stands out from the others by the
    question's words it holds (a row that does, "business class", is quoted alone, with its headers)."""
    scores = sorted((weight(found) for found in one.per_sentence), reverse=True)
    return len(scores) > 1 and (scores[0] == 0.0 or scores[1] >= 0.67 * scores[0])


def _table_lead(one: _Read) -> str:
    topic = one.passage.heading.split(" › ")
    return f"{topic[-2]}:" if len(topic) > 1 else ""


def _join(pieces: list[tuple[str, str, int]]) -> str:
    """Sentences run on with their markers; a Markdown block stands apart, after the marker of its lead-in."""
    out = ""
    for text, block, number in pieces:
        said = f"{text} [{number}]" if text else f"[{number}]"
        if block:
            out += ("\n\n" if out else "") + f"{said}\n\n{block}\n\n"
        else:
            out += (" " if out and not out.endswith("\n") else "") + said
    return out.strip()


def _beside_a_match(passage: _Read, index: int) -> bool:
    """A sentence holding the kind of answer asked for, right after one that matches the question ("...performs
    a waggle dance." "The angle of the run shows the direction..."); for a "how does..." question, one that
    goes on about the same thing (close in meaning to the question)."""
    if index == 0 or not passage.per_sentence[index - 1] or passage.passage.sentences[index].lead is not None:
        return False
    going_on = passage.manner and passage.sentence_meaning[index] >= _GOES_ON_MEANING
    return passage.cued[index] or going_on


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
        # The embedder's first load (~0.2 s) and every embedding happen in that thread too.
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
