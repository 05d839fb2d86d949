"""The sentence stage of hybrid search (rerank.by_meaning without the word ranking, over 20 chunks; by_sentences before it), now and as of an earlier commit, in
one run on the same chunks: knowledge_bench's ~680-word pseudo-word chunks (3.5 tokens a word) and prose.

    .venv/bin/python bench/sentence_stage_bench.py [--baseline COMMIT]

The baseline's `embedders/offline.py` and `knowledge/rerank.py` are read from git and loaded beside the current
ones; both see every chunk once before timing (word caches warm, as in a server), then each question's 20 chunks
are new to the per-chunk cache, as for questions on a large collection.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_old(commit: str, path: str, name: str):  # type: ignore[no-untyped-def]
    source = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=ROOT, capture_output=True, text=True, check=True)
    text = source.stdout.replace("from .base import", "from assistant_chat.embedders.base import")
    text = text.replace("from ..embedders.base import", "from assistant_chat.embedders.base import")
    text = text.replace("from .search import", "from assistant_chat.knowledge.search import")
    spec = importlib.util.spec_from_loader(name, loader=None)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    exec(compile(text, f"{commit}:{path}", "exec"), module.__dict__)  # noqa: S102 - our own file at a commit
    return module


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", default="64a38ee", help="commit before the faster sentence stage")
    parser.add_argument("--questions", type=int, default=100)
    args = parser.parse_args()
    sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    import django

    django.setup()  # settings only: no database is touched
    from knowledge_bench import TextMaker

    from assistant_chat.embedders import offline
    from assistant_chat.knowledge import rerank, word_table
    from assistant_chat.knowledge.search import Hit

    old_offline = load_old(args.baseline, "assistant_chat/embedders/offline.py", "old_offline")
    old_rerank = load_old(args.baseline, "assistant_chat/knowledge/rerank.py", "old_rerank")
    maker = TextMaker()
    pseudo = [maker.paragraph(680) for _ in range(20 * args.questions)]
    # Prose: the development set's documents, cut into 680-word pieces with their lines and punctuation.
    lines = [line for path in sorted((ROOT / "bench" / "retrieval_dev" / "docs").iterdir())
             for line in path.read_text(errors="replace").splitlines(keepends=True)]  # fmt: skip
    pieces, current, count = [], [], 0
    for line in lines:
        current.append(line)
        count += len(line.split())
        if count >= 680:
            pieces.append("".join(current))
            current, count = [], 0
    prose = [pieces[i % len(pieces)] for i in range(20 * args.questions)]
    now, then = offline.OfflineEmbedder(), old_offline.OfflineEmbedder()
    query = now.embed(["what about the flowers"])[0]
    print(f"sentence stage, 20 chunks a question, {args.questions} questions; baseline {args.baseline}\n")
    terms = ["flowers"]
    print("| chunks | baseline p50 ms | now p50 ms | same order | now with the word ranking p50 ms |")
    print("| --- | ---: | ---: | --- | ---: |")
    for label, texts in (("pseudo-words, ~680 words", pseudo), ("development-set prose, ~680 words", prose)):
        for module, embedder in ((old_rerank, then), (rerank, now)):  # warm the word caches on every chunk
            embedder.embed_runs([module.sentences(text) for text in texts])
        word_table.chunk_rows(now, [(-1 - i, text) for i, text in enumerate(texts)])  # every word met once
        timings: dict[str, list[float]] = {"then": [], "now": [], "words": []}
        same = True
        for q in range(args.questions):
            base = 10_000_000 * (q + 1)
            orders = {}
            for key, module, embedder in (("then", old_rerank, then), ("now", rerank, now)):
                hits = [Hit(base + i, 1, i, texts[20 * q + i], [], 1.0) for i in range(20)]
                started = time.perf_counter()
                ranked = (getattr(module, "by_meaning", None) or module.by_sentences)(embedder, query, hits)
                timings[key].append((time.perf_counter() - started) * 1000)
                orders[key] = [hit.chunk_id for hit in ranked]
            same = same and orders["then"] == orders["now"]
            hits = [Hit(base + 20 + i, 1, i, texts[20 * q + i], [], 1.0) for i in range(20)]  # new to the caches
            started = time.perf_counter()
            rerank.by_meaning(now, query, hits, terms=terms)
            timings["words"].append((time.perf_counter() - started) * 1000)
        print(
            f"| {label} | {statistics.median(timings['then']):.2f} | {statistics.median(timings['now']):.2f} "
            f"| {'yes' if same else 'no'} | {statistics.median(timings['words']):.2f} |"
        )


if __name__ == "__main__":
    main()
