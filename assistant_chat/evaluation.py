"""Answer evaluation, offline: how far an answer agrees with a ground-truth answer, as Pinecone's alignment metrics.

Pinecone judges with a model. With none at hand this compares facts by their words: each sentence is a fact; a fact
is entailed by a text that holds most of its content words and every number in it, contradicted by one that
leaves out a number or name of it and gives others instead ("Madrid." against "Barcelona.", 1477 against 1476),
and neutral otherwise. Correctness is the share of the answer's facts the ground truth entails (precision), completeness the
share of the ground truth's facts the answer entails (recall), alignment their harmonic mean. Deterministic; no
Django, no network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .knowledge.chunking import count_tokens
from .providers import offline_reading as reading

ENTAILED, CONTRADICTED, NEUTRAL = "entailed", "contradicted", "neutral"
_COVERED = 0.6  # the share of a fact's content words a text must hold to entail it
_MARKER = re.compile(r"\s*\[\d+(?:, pp?\. [\d, ]+)?\]")
_SPECIFIC = re.compile(r"\b(?:\d[\d.,:/-]*\d|\d|[A-Z][\w'’-]*)")


@dataclass(frozen=True)
class Judged:
    fact: str
    entailment: str
    reasoning: str


@dataclass(frozen=True)
class Alignment:
    correctness: float
    completeness: float
    alignment: float
    facts: list[Judged]  # the ground truth's facts, each judged against the answer
    prompt_tokens: int
    completion_tokens: int


def align(*, question: str, answer: str, ground_truth: str) -> Alignment:
    # An assistant's citation markers are not part of what it says.
    said, truth = _MARKER.sub("", answer), _MARKER.sub("", ground_truth)
    # Either side may leave out what the question already says ("Madrid." answers "the capital of Spain").
    asked = set(reading.terms(question))
    judged = _judge_all(_facts(truth), said, asked, "answer")
    supported = _judge_all(_facts(said), truth, asked, "ground truth")
    completeness = _share(judged)
    correctness = _share(supported)
    total = correctness + completeness
    alignment = 2 * correctness * completeness / total if total else 0.0
    return Alignment(
        correctness=round(correctness, 4),
        completeness=round(completeness, 4),
        alignment=round(alignment, 4),
        facts=judged,
        prompt_tokens=count_tokens(question) + count_tokens(answer) + count_tokens(ground_truth),
        completion_tokens=sum(count_tokens(j.reasoning) for j in judged),
    )


def _facts(text: str) -> list[str]:
    found = reading.sentences(text)
    return found or ([text.strip()] if text.strip() else [])


def _share(judged: list[Judged]) -> float:
    return sum(j.entailment == ENTAILED for j in judged) / len(judged) if judged else 0.0


def _specifics(text: str) -> set[str]:
    """Numbers and capitalised words (names), as stems: what a fact cannot do without."""
    return {reading.stem(word.lower()) for word in _SPECIFIC.findall(text) if word.lower() not in reading.STOP}


def _holds(words: set[str], other: set[str]) -> set[str]:
    return {word for word in words if any(reading.same_family(word, candidate) for candidate in other)}


def _judge_all(facts: list[str], text: str, asked: set[str], against: str) -> list[Judged]:
    """Each fact judged against `text` (read once for all of them)."""
    other = set(reading.terms(text)) | asked
    text_specifics = _specifics(text)
    return [_judge(fact, other, text_specifics, asked, against) for fact in facts]


def _judge(fact: str, other: set[str], text_specifics: set[str], asked: set[str], against: str) -> Judged:
    words = set(reading.terms(fact))
    specifics = _specifics(fact)
    held = _holds(words, other)
    missing = specifics - _holds(specifics, other)
    # A name more or less is a detail ("Gutenberg of Mainz"); a number that differs is not the same fact.
    if not words or (len(held) >= _COVERED * len(words) and not any(s[:1].isdigit() for s in missing)):
        return Judged(fact, ENTAILED, f"The {against} states this.")
    offered = text_specifics - _holds(text_specifics, words | asked)
    if missing and offered:
        return Judged(
            fact,
            CONTRADICTED,
            f"The {against} gives {', '.join(sorted(offered))} where this fact has {', '.join(sorted(missing))}.",
        )
    absent = sorted(words - held)
    return Judged(fact, NEUTRAL, f"The {against} does not say this (nothing on: {', '.join(absent)}).")
