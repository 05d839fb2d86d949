"""Choosing how hybrid search fuses its two rankings, on a development set (never on the held-out one).

    .venv/bin/python bench/fusion_dev.py                       # bench/retrieval_dev, SQLite and PostgreSQL
    .venv/bin/python bench/fusion_dev.py --engines sqlite --top 20

Each engine, in its own process on a fresh database, ingests the development documents through the real pipeline
and records, for every question, the two candidate lists hybrid search fuses (words: `search_chunks`; meaning:
`vector_search` on the question's offline embedding; 32 each, as `retrieve` asks) with their scores, and which
candidates hold the answering passage. The parent then scores fusion functions over those lists: reciprocal rank
fusion with weights, and convex combinations of normalised scores (Bruch et al. 2023, "An Analysis of Fusion
Functions for Hybrid Retrieval"), each with the relative floor for chunks found by meaning alone. It prints the
best settings by hit@5 on paraphrased questions among those that are never below lexical on questions that reuse
the document's words, on every engine. `bench/retrieval_data` is refused: it is held out.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np
from engine_runs import ROOT, run_child, setup_django
from retrieval_bench import CANDIDATES, DATA, DEPTH, KINDS, ingest, is_hit, load_data, normalise

DEV = ROOT / "bench" / "retrieval_dev"


def run_engine(engine: str, data: Path, embedding_model: str = "offline") -> dict:
    setup_django()
    from assistant_chat.knowledge import hybrid
    from assistant_chat.knowledge.embedding import query_vector
    from assistant_chat.knowledge.search import search_chunks
    from assistant_chat.knowledge.vectors import vector_search
    from assistant_chat.models import Chunk, File

    manifest, questions = load_data(data)
    assistant, _ = ingest(data, manifest, embedding_model)
    names = dict(File.objects.filter(assistant=assistant).values_list("pk", "name"))
    texts = dict(Chunk.objects.filter(assistant=assistant).values_list("pk", "text"))
    files = dict(Chunk.objects.filter(assistant=assistant).values_list("pk", "file_id"))
    rows = []
    for question in questions:
        lexical = search_chunks(assistant_id=assistant.pk, query=question["question"], limit=CANDIDATES)
        vector = query_vector(assistant.embedded_with, question["question"])
        dense = vector_search(assistant_id=assistant.pk, model=assistant.embedded_with, query=vector, limit=CANDIDATES)
        passage = normalise(question["passage"])
        hits = [
            chunk_id
            for chunk_id, text in texts.items()
            if names.get(files[chunk_id]) == question["file"] and is_hit(text, passage)
        ]
        rows.append(
            {
                "id": question["id"],
                "kind": question["kind"],
                "lexical": [[hit.chunk_id, hit.score] for hit in lexical],
                "dense": [[hit.chunk_id, hit.similarity] for hit in dense],
                "hits": hits,
                "question": question["question"],
                # What hybrid search returns today: the settings in the code, end to end.
                "product": [
                    hit.chunk_id
                    for hit in hybrid.search(assistant=assistant, query=question["question"], limit=CANDIDATES)
                ],
            }
        )
    wanted = {c for row in rows for c, _ in (*row["lexical"], *row["dense"])}
    return {
        "engine": engine,
        "chunks": len(texts),
        "rows": rows,
        "texts": {c: texts[c] for c in wanted},
        "files": {c: files[c] for c in wanted},
    }


# Fusion functions over one question's lists. Each returns chunk ids, best first.


def _floored(row: dict, floor: float) -> list[list]:
    dense = row["dense"]
    if not dense:
        return dense
    cut = max(dense[0][1], 0.0) * floor
    lexical_ids = {chunk_id for chunk_id, _ in row["lexical"]}
    return [d for d in dense if (d[1] > 0 and d[1] >= cut) or d[0] in lexical_ids]


def rrf(row: dict, *, k: float, w_lexical: float, floor: float) -> list[int]:
    fused: dict[int, float] = {}
    for weight, ranking in ((w_lexical, row["lexical"]), (1.0, _floored(row, floor))):
        for rank, (chunk_id, _) in enumerate(ranking):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + weight / (k + rank + 1)
    return sorted(fused, key=lambda c: (-fused[c], c))


def convex(row: dict, *, alpha: float, floor: float, norm: str) -> list[int]:
    """alpha * lexical + (1 - alpha) * dense, each normalised: "minmax" within the list, "max" by its best."""

    def scaled(ranking: list[list]) -> dict[int, float]:
        if not ranking:
            return {}
        values = [score for _, score in ranking]
        high, low = max(values), min(values)
        if norm == "minmax":
            span = high - low
            return {c: (s - low) / span if span > 0 else 1.0 for c, s in ranking}
        return {c: s / high if high > 0 else 0.0 for c, s in ranking}

    lexical, dense = scaled(row["lexical"]), scaled(_floored(row, floor))
    fused = {c: alpha * lexical.get(c, 0.0) + (1 - alpha) * dense.get(c, 0.0) for c in {*lexical, *dense}}
    return sorted(fused, key=lambda c: (-fused[c], c))


class Passages:
    """Sentence-level similarity of a question to a chunk: the best sentence (or pair of adjacent sentences), by
    the offline embedder. A paraphrased question matches one or two sentences, which a chunk's mean dilutes."""

    def __init__(self, texts: dict[tuple[str, int], str]) -> None:
        from assistant_chat.embedders.offline import OfflineEmbedder

        self.embedder = OfflineEmbedder()
        self.texts = texts
        self.units: dict[tuple[str, int], np.ndarray] = {}
        self.queries: dict[str, np.ndarray] = {}

    def _units(self, chunk_id: tuple[str, int]) -> np.ndarray:
        if chunk_id not in self.units:
            from assistant_chat.knowledge.rerank import sentences

            self.units[chunk_id] = self.embedder.embed_runs([sentences(self.texts[chunk_id])], longest=2)[0]
        return self.units[chunk_id]

    def similarity(self, question: str, chunk_id: tuple[str, int]) -> float:
        if question not in self.queries:
            self.queries[question] = self.embedder.embed_query(question)
        return float((self._units(chunk_id) @ self.queries[question]).max())

    def word_match(self, question: str, chunk_ids: list[tuple[str, int]]) -> list[float]:
        """The product's word ranking (knowledge/rerank.py): each question term's nearest word in the chunk."""
        from assistant_chat.knowledge.rerank import word_match
        from assistant_chat.knowledge.search import Hit, query_terms

        hits = [Hit(c[1], 0, 0, self.texts[c], [], 0.0) for c in chunk_ids]
        return word_match(self.embedder, query_terms(question), hits)


def rerank(  # type: ignore[no-untyped-def]
    row: dict, passages: Passages, *, depth: int, weight: float, k: float, base, words: float = 0.0
) -> list[int]:
    """The first `depth` of a fused order ranked again by RRF of that order, the sentence-level similarity (at
    `weight`) and, at `words` > 0, the word ranking."""
    order = base(row)
    head, tail = order[:depth], order[depth:]
    sims = {c: passages.similarity(row["question"], (row["engine"], c)) for c in head}
    rankings = [(weight, sims)]
    if words > 0:
        scores = passages.word_match(row["question"], [(row["engine"], c) for c in head])
        rankings.append((words, dict(zip(head, scores, strict=True))))
    fused = {c: 1.0 / (k + i + 1) for i, c in enumerate(head)}
    for w, by in rankings:
        for i, c in enumerate(sorted(head, key=lambda c: (-by[c], c))):
            fused[c] += w / (k + i + 1)
    return sorted(head, key=lambda c: (-fused[c], c)) + tail


def coverage(question: str, text: str) -> float:
    """The product's (knowledge/rerank.py): the share of the question's terms in `text`."""
    from assistant_chat.knowledge.rerank import coverage as product_coverage

    return product_coverage(question, text)


def gated(row: dict, texts: dict, *, threshold: float, base) -> list[int]:  # type: ignore[no-untyped-def]
    """The base order, except that the first lexical hit leads when it holds at least `threshold` of the terms."""
    order = base(row)
    if row["lexical"]:
        first = row["lexical"][0][0]
        if coverage(row["question"], texts[(row["engine"], first)]) >= threshold:
            order = [first, *[c for c in order if c != first]]
    return order


def weighted_gated(row: dict, texts: dict, *, low: float, high: float, covered: float) -> list[int]:
    """knowledge/hybrid.py's WeightedFusion, then the lexical lead at coverage 0.5."""
    first = row["lexical"][0][0] if row["lexical"] else None
    share = high if first is not None and coverage(row["question"], texts[(row["engine"], first)]) >= covered else low
    return gated(row, texts, threshold=0.5, base=lambda r: convex(r, alpha=share, floor=0.5, norm="max"))


def only(row: dict, *, which: str) -> list[int]:
    return [chunk_id for chunk_id, _ in row[which]]


def metrics(rows: list[dict], rank_of) -> dict:  # type: ignore[no-untyped-def]
    ranks = []
    for row in rows:
        hits = set(row["hits"])
        order = rank_of(row)[:DEPTH]
        ranks.append(next((i for i, c in enumerate(order, start=1) if c in hits), None))
    n = len(ranks) or 1
    return {
        "hit1": sum(1 for r in ranks if r == 1) / n,
        "hit5": sum(1 for r in ranks if r is not None and r <= 5) / n,
        "mrr10": sum(1 / r for r in ranks if r is not None) / n,
    }


def settings(texts: dict, passages: Passages | None) -> list[tuple[str, object]]:
    found: list[tuple[str, object]] = [
        ("lexical", lambda row: only(row, which="lexical")),
        ("dense", lambda row: only(row, which="dense")),
        ("product (hybrid.search as committed)", lambda row: row.get("product", [])),
    ]
    for k, w, floor in itertools.product((10, 30, 60), (0.3, 0.5, 0.7, 1.0, 1.5), (0.0, 0.5, 0.7)):
        found.append(
            (f"rrf k={k} w_lex={w} floor={floor}", lambda row, k=k, w=w, f=floor: rrf(row, k=k, w_lexical=w, floor=f))
        )
    for alpha, floor, norm in itertools.product((0.1, 0.2, 0.3, 0.4, 0.5, 0.6), (0.0, 0.5), ("minmax", "max")):
        found.append(
            (
                f"convex {norm} alpha={alpha} floor={floor}",
                lambda row, a=alpha, f=floor, n=norm: convex(row, alpha=a, floor=f, norm=n),
            )
        )
    # For an embedder whose meaning ranking leads (knowledge/hybrid.py WEIGHTED_FUSION): the weighted sum of scores
    # scaled by each list's best, the word share raised when the first word match holds `covered` of the terms.
    for low, high, covered in itertools.product((0.1, 0.15, 0.2), (0.3, 0.5), (0.6, 0.75)):
        found.append(
            (
                f"weighted words {low} ({high} at coverage>={covered}) floor=0.5, lexical first at coverage>=0.5",
                lambda row, lo=low, hi=high, c=covered: weighted_gated(row, texts, low=lo, high=hi, covered=c),
            )
        )
    if passages is not None:
        for threshold, (base_k, base_w) in itertools.product(
            (0.34, 0.4, 0.5, 0.6, 0.75), ((60, 1.0), (10, 0.3), (30, 0.5))
        ):

            def gate_base(row, bk=base_k, bw=base_w):  # type: ignore[no-untyped-def]
                return rerank(
                    row, passages, depth=20, weight=1.0, k=5, base=lambda r: rrf(r, k=bk, w_lexical=bw, floor=0.5)
                )

            found.append(
                (
                    f"rrf k={base_k} w_lex={base_w} floor=0.5 + sentences 20/1.0/5, lexical first at coverage>={threshold}",
                    lambda row, t=threshold, b=gate_base: gated(row, passages.texts, threshold=t, base=b),
                )
            )
        # The word ranking as a third input of the second stage (knowledge/rerank.py's word_match), on the chosen
        # first stage and gate; `sentences 0` is words in place of sentences.
        for depth, sentence_w, word_w, k in itertools.product(
            (10, 15, 20, 32), (0.0, 0.5, 1.0), (0.5, 0.7, 1.0, 1.5), (3, 5, 10)
        ):

            def words_base(row, d=depth, sw=sentence_w, ww=word_w, kk=k):  # type: ignore[no-untyped-def]
                return rerank(
                    row,
                    passages,
                    depth=d,
                    weight=sw,
                    k=kk,
                    words=ww,
                    base=lambda r: rrf(r, k=60, w_lexical=1.0, floor=0.5),
                )

            found.append(
                (
                    f"rrf k=60 w_lex=1.0 floor=0.5 + sentences {depth}/{sentence_w}/{k} + words {word_w}, lexical first at coverage>=0.5",
                    lambda row, b=words_base: gated(row, passages.texts, threshold=0.5, base=b),
                )
            )
        for base_k, base_w in ((60, 1.0), (30, 0.5), (60, 0.5)):

            def base(row, bk=base_k, bw=base_w):  # type: ignore[no-untyped-def]
                return rrf(row, k=bk, w_lexical=bw, floor=0.5)

            for depth, weight, k in itertools.product((10, 20), (0.5, 1.0, 2.0), (5, 30)):
                found.append(
                    (
                        f"rrf k={base_k} w_lex={base_w} floor=0.5 + sentences depth={depth} w={weight} k={k}",
                        lambda row, d=depth, w=weight, kk=k, b=base: rerank(
                            row, passages, depth=d, weight=w, k=kk, base=b
                        ),
                    )
                )
    return found


def report(engines: list[dict], top: int, sentences: bool) -> None:
    texts = {(e["engine"], int(c)): t for e in engines for c, t in e.get("texts", {}).items()}
    for result in engines:
        for row in result["rows"]:
            row["engine"] = result["engine"]
    table = []
    for name, rank_of in settings(texts, Passages(texts) if sentences else None):
        figures = {}
        for result in engines:
            for kind in KINDS:
                rows = [r for r in result["rows"] if r["kind"] == kind]
                figures[(result["engine"], kind)] = metrics(rows, rank_of)
        table.append((name, figures))
    lexical = dict(table)["lexical"]

    def never_below(figures: dict) -> bool:
        return all(
            figures[(e["engine"], "reuses_words")][m] >= lexical[(e["engine"], "reuses_words")][m]
            for e in engines
            for m in ("hit1", "hit5", "mrr10")
        )

    def key(item: tuple) -> tuple:
        figures = item[1]
        para = [figures[(e["engine"], "paraphrased")] for e in engines]
        return (min(p["hit5"] for p in para), sum(p["mrr10"] for p in para))

    ranked = sorted(table, key=key, reverse=True)
    header = " | ".join(f"{e['engine']} {kind[:4]} h1/h5/mrr" for e in engines for kind in KINDS)
    print(f"| setting | ok | {header} |")
    print("| --- | --- |" + " --- |" * (len(engines) * len(KINDS)))
    shown = [
        row
        for row in ranked
        if row[0] in ("lexical", "dense") or row[0].startswith("product") or row[0] == "rrf k=60 w_lex=1.0 floor=0.5"
    ]
    rest = [row for row in ranked if row[0] not in ("lexical", "dense") and not row[0].startswith("product")]
    shown += [row for row in rest if never_below(row[1])][:top]
    shown += [row for row in rest if not never_below(row[1])][: max(3, top // 4)]
    for name, figures in shown:
        cells = " | ".join(
            "{hit1:.3f}/{hit5:.3f}/{mrr10:.3f}".format(**figures[(e["engine"], kind)])
            for e in engines
            for kind in KINDS
        )
        print(f"| {name} | {'yes' if never_below(figures) else 'no'} | {cells} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--data", default=str(DEV))
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--json", help="write (or, with --from-json, read) the collected lists here")
    parser.add_argument("--from-json", action="store_true", help="score the lists saved by an earlier --json run")
    parser.add_argument("--sentences", action="store_true", help="also score re-ranking by sentence similarity")
    parser.add_argument(
        "--embedding-model", default="offline", help="the assistant's embedding model (default: the built-in one)"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    data = Path(args.data).resolve()
    if data == DATA.resolve():
        sys.exit("bench/retrieval_data is held out: choose settings on another set (see its README)")
    if args.child:
        print(json.dumps(run_engine(args.engine, data, args.embedding_model)))
        return
    if args.from_json:
        engines = json.loads(Path(args.json).read_text())
    else:
        engines = [
            run_child(__file__, e, ["--data", str(data), "--embedding-model", args.embedding_model], "chat_fusion")
            for e in args.engines.split(",")
        ]
        if args.json:
            Path(args.json).write_text(json.dumps(engines))
    for result in engines:
        counts = {kind: sum(1 for r in result["rows"] if r["kind"] == kind) for kind in KINDS}
        print(f"- {result['engine']}: {result['chunks']} chunks, questions {counts}")
    report(engines, args.top, args.sentences)


if __name__ == "__main__":
    main()
