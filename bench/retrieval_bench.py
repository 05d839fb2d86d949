"""Retrieval quality benchmark: lexical, dense and hybrid ranking on held-out documents and questions.

    .venv/bin/python bench/retrieval_bench.py                      # SQLite and PostgreSQL, in one run
    .venv/bin/python bench/retrieval_bench.py --engines sqlite

Reads bench/retrieval_data/ (format in its README: documents, manifest metadata, questions with the answering file
and passage, labelled `paraphrased` or `reuses_words`). Each engine, in its own process on a fresh database,
ingests every document through the real pipeline (`services.file_upload`: parse, chunk, embed with the offline
model, index), then asks every question three ways through `knowledge.hybrid.search` (top 10 chunks): words only,
meaning only, and both fused (what `context`, chat and rooms use). A chunk is a hit when it comes from the
question's file and holds the passage, or the start or end of it (a passage across a chunk boundary). Reports hit@1,
hit@5 and MRR@10 per kind of question. The data is held out: nothing here is tuned on it.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

from engine_runs import ROOT, run_child, setup_django

DATA = ROOT / "bench" / "retrieval_data"
MODES = ("lexical", "dense", "hybrid")
KINDS = ("paraphrased", "reuses_words")
DEPTH = 10
CANDIDATES = 32  # what retrieve() asks hybrid search for (top_k 16, doubled)
EDGE = 60  # characters of a passage's start or end that mark a chunk overlapping it


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def is_hit(chunk_text: str, passage: str) -> bool:
    text = normalise(chunk_text)
    return passage in text or passage[:EDGE] in text or passage[-EDGE:] in text


def load_data(data: Path) -> tuple[dict[str, dict], list[dict]]:
    """A data folder's documents (file name -> metadata) and questions: `manifest.json` and `questions.jsonl`,
    or several parts (`manifest_*.json`, `questions_*.jsonl`) written by different people."""
    manifest: dict[str, dict] = {}
    for path in sorted(data.glob("manifest*.json")):
        manifest.update({entry["file"]: entry.get("metadata", {}) for entry in json.loads(path.read_text())})
    questions = [
        json.loads(line)
        for path in sorted(data.glob("questions*.jsonl"))
        for line in path.read_text().splitlines()
        if line.strip()
    ]
    return manifest, questions


def ingest(data: Path, manifest: dict[str, dict], embedding_model: str = "offline"):  # type: ignore[no-untyped-def]
    """A new assistant holding every document of `data`, ingested through the real pipeline; and the seconds."""
    from assistant_chat import services

    assistant = services.assistant_create(name="retrieval-bench")
    if embedding_model != "offline":
        assistant.embedding_model = assistant.embedded_with = embedding_model
        assistant.save(update_fields=["embedding_model", "embedded_with"])
    started = time.perf_counter()
    for name, metadata in sorted(manifest.items()):
        payload = (data / "docs" / name).read_bytes()
        status = services.file_upload(assistant=assistant, name=name, data=payload, metadata=metadata)[2].result()
        assert status == "Available", (name, status)
    return assistant, time.perf_counter() - started


def run_engine(engine: str, data: Path = DATA, embedding_model: str = "offline") -> dict:
    setup_django()
    from assistant_chat.knowledge import embedding, hybrid
    from assistant_chat.models import File

    manifest, questions = load_data(data)
    assistant, ingest_seconds = ingest(data, manifest, embedding_model)
    names = dict(File.objects.filter(assistant=assistant).values_list("pk", "name"))

    per_question = []
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    for question in questions:
        passage = normalise(question["passage"])
        ranks = {}
        for mode in MODES:
            embedding._memo.clear()  # each ranking pays for embedding the question, as a new question does
            t0 = time.perf_counter()
            # As retrieval asks (twice top_k candidates, fused), then the first DEPTH are scored.
            hits = hybrid.search(assistant=assistant, query=question["question"], limit=CANDIDATES, mode=mode)[:DEPTH]
            times[mode].append((time.perf_counter() - t0) * 1000)
            ranks[mode] = next(
                (
                    rank
                    for rank, hit in enumerate(hits, start=1)
                    if names.get(hit.file_pk) == question["file"] and is_hit(hit.text, passage)
                ),
                None,
            )
        per_question.append({"id": question["id"], "kind": question["kind"], "ranks": ranks})
    return {
        "engine": engine,
        "documents": len(manifest),
        "questions": len(questions),
        "ingest_seconds": ingest_seconds,
        "per_question": per_question,
        "p50_ms": {mode: statistics.median(values) for mode, values in times.items()},
    }


def scores(rows: list[dict], mode: str) -> dict:
    ranks = [row["ranks"][mode] for row in rows]
    n = len(ranks)
    return {
        "n": n,
        "hit1": sum(1 for r in ranks if r is not None and r <= 1) / n,
        "hit5": sum(1 for r in ranks if r is not None and r <= 5) / n,
        "mrr10": sum(1 / r for r in ranks if r is not None and r <= DEPTH) / n,
    }


def print_markdown(reports: list[dict], label: str = "held-out questions") -> None:
    print(f"\n### Retrieval quality (top 10 chunks; {label})\n")
    print("| engine | questions | ranking | n | hit@1 | hit@5 | MRR@10 |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: |")
    verdicts = []
    for report in reports:
        for kind in (*KINDS, "all"):
            rows = [r for r in report["per_question"] if kind == "all" or r["kind"] == kind]
            figures = {}
            for mode in MODES:
                s = figures[mode] = scores(rows, mode)
                print(
                    f"| {report['engine']} | {kind} | {mode} | {s['n']} | {s['hit1']:.3f} | {s['hit5']:.3f} "
                    f"| {s['mrr10']:.3f} |"
                )
            if kind == "paraphrased":
                met = figures["hybrid"]["hit5"] >= 0.9
                verdicts.append(
                    f"{report['engine']}: hybrid hit@5 on paraphrased questions {figures['hybrid']['hit5']:.3f} "
                    f"(target >= 0.9: {'met' if met else 'NOT met'})"
                )
            if kind == "reuses_words":
                ok = all(figures["hybrid"][k] >= figures["lexical"][k] for k in ("hit1", "hit5", "mrr10"))
                verdicts.append(
                    f"{report['engine']}: hybrid vs lexical on reuses-words questions, hit@1/hit@5/MRR@10 "
                    + ", ".join(
                        f"{figures['hybrid'][k]:.3f} vs {figures['lexical'][k]:.3f}" for k in ("hit1", "hit5", "mrr10")
                    )
                    + f" (never below lexical: {'met' if ok else 'NOT met'})"
                )
    print()
    for report in reports:
        p50 = ", ".join(f"{mode} {ms:.2f} ms" for mode, ms in report["p50_ms"].items())
        print(
            f"- {report['engine']}: {report['documents']} documents ingested in {report['ingest_seconds']:.1f} s; "
            f"{report['questions']} questions; search p50 {p50}"
        )
    for verdict in verdicts:
        print(f"- {verdict}")


def child(args: argparse.Namespace) -> None:
    print(json.dumps(run_engine(args.engine, Path(args.data), args.embedding_model)))


def parent(args: argparse.Namespace) -> None:
    reports = []
    for engine in args.engines.split(","):
        reports.append(
            run_child(
                __file__, engine, ["--data", args.data, "--embedding-model", args.embedding_model], "chat_retrieval"
            )
        )
    data = Path(args.data).resolve()
    print_markdown(reports, "held-out questions" if data == DATA else f"questions of {data.relative_to(ROOT)}")
    if args.json:
        Path(args.json).write_text(json.dumps(reports, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--json", help="also write every question's ranks to this file")
    parser.add_argument("--data", default=str(DATA), help="the data folder (default: the held-out set)")
    parser.add_argument(
        "--embedding-model", default="offline", help="the assistant's embedding model (default: the built-in one)"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.child:
        child(args)
    else:
        parent(args)


if __name__ == "__main__":
    main()
