"""Validate the retrieval benchmark data (stdlib only).

Checks: every manifest file exists and every document is listed; every question
names a listed file and its passage occurs exactly once in that file; ids are
unique; kinds are known; counts meet the minimums. Prints the mean content-word
overlap between question and passage per kind (paraphrased should be clearly
lower than reuses_words).

Usage: python3 bench/retrieval_data/check.py [DATA_FOLDER]   (default: this folder; e.g. bench/retrieval_heldout2)
"""

import json
import re
import sys
from pathlib import Path

HERE = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else Path(__file__).resolve().parent
DOCS = HERE / "docs"
MIN_DOCS, MIN_QUESTIONS = 40, 150
KINDS = ("paraphrased", "reuses_words")

# A small stop list: overlap is meant to count content words only.
STOP = set(
    """
a about above after again against all am an and any are as at be because been before being below between both but by
can could did do does doing down during each few for from further had has have having he her here hers him his how i
if in into is it its itself just me more most my no nor not now of off on once only or other our ours out over own
same she should so some such than that the their theirs them then there these they this those through to too under
until up very was we were what when where which while who whom why will with would you your yours yourself s t
get got go goes going one ones many much may might must also there's it's i'm i've can't don't does doesn't
""".split()
)


def content_words(text):
    words = re.findall(r"[a-z0-9]+", text.lower())
    return {w for w in words if w not in STOP and len(w) > 1}


def overlap(question, passage):
    """Share of the question's content words that also appear in the passage."""
    q = content_words(question)
    if not q:
        return 0.0
    return len(q & content_words(passage)) / len(q)


def main():
    errors = []
    manifest = json.loads((HERE / "manifest.json").read_text(encoding="utf-8"))
    listed = {}
    for entry in manifest:
        name = entry.get("file")
        if not name or not isinstance(entry.get("metadata"), dict) or not entry["metadata"]:
            errors.append(f"manifest entry without file or metadata: {entry}")
            continue
        if name in listed:
            errors.append(f"manifest lists {name} twice")
        path = DOCS / name
        if not path.is_file():
            errors.append(f"manifest file missing: {name}")
            continue
        listed[name] = path.read_text(encoding="utf-8")
    on_disk = {p.name for p in DOCS.iterdir() if p.is_file()}
    for name in sorted(on_disk - set(listed)):
        errors.append(f"document not in manifest: {name}")
    for name, text in listed.items():
        n = len(text.split())
        if not 300 <= n <= 1500:
            errors.append(f"{name}: {n} words (want 300-1500)")

    questions, ids = [], set()
    with open(HERE / "questions.jsonl", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                q = json.loads(line)
            except json.JSONDecodeError as exc:
                errors.append(f"questions.jsonl:{lineno}: bad JSON ({exc})")
                continue
            questions.append(q)
            where = f"questions.jsonl:{lineno} ({q.get('id')})"
            if q.get("id") in ids:
                errors.append(f"{where}: duplicate id")
            ids.add(q.get("id"))
            if q.get("kind") not in KINDS:
                errors.append(f"{where}: kind must be one of {KINDS}")
            if not q.get("question", "").strip():
                errors.append(f"{where}: empty question")
            text = listed.get(q.get("file"))
            if text is None:
                errors.append(f"{where}: file {q.get('file')!r} not in manifest")
            elif not q.get("passage") or q["passage"] not in text:
                errors.append(f"{where}: passage is not an exact substring of {q.get('file')}")
            elif text.count(q["passage"]) > 1:
                errors.append(f"{where}: passage occurs more than once in {q.get('file')} (its span is ambiguous)")

    per_kind = {k: [] for k in KINDS}
    for q in questions:
        if q.get("kind") in per_kind:
            per_kind[q["kind"]].append(overlap(q["question"], q.get("passage", "")))
    docs_with_q = {q.get("file") for q in questions}
    for name in sorted(set(listed) - docs_with_q):
        errors.append(f"{name}: no questions")

    print(
        f"documents: {len(listed)} ({sum(n.endswith('.md') for n in listed)} .md, "
        f"{sum(n.endswith('.txt') for n in listed)} .txt), "
        f"words: {sum(len(t.split()) for t in listed.values())}"
    )
    print(f"questions: {len(questions)}")
    for kind, values in per_kind.items():
        share = len(values) / len(questions) if questions else 0
        mean = sum(values) / len(values) if values else 0
        print(f"  {kind:13s} {len(values):4d} ({share:.0%})  mean content-word overlap with passage: {mean:.2f}")
    domains = {}
    for entry in manifest:
        d = entry.get("metadata", {}).get("domain")
        domains[d] = domains.get(d, 0) + 1
    print("domains: " + ", ".join(f"{d}={n}" for d, n in sorted(domains.items(), key=str)))
    if len(listed) < MIN_DOCS:
        errors.append(f"only {len(listed)} documents (need {MIN_DOCS})")
    if len(questions) < MIN_QUESTIONS:
        errors.append(f"only {len(questions)} questions (need {MIN_QUESTIONS})")
    if questions and len(per_kind["paraphrased"]) / len(questions) < 0.6:
        errors.append("fewer than 60% of questions are paraphrased")
    for e in errors:
        print("ERROR:", e)
    print("OK" if not errors else f"{len(errors)} error(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
