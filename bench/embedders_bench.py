"""The built-in embedders side by side: chunks embedded per second, KB of text per second, a question's time.

    .venv/bin/python bench/embedders_bench.py                  # the development set's documents
    .venv/bin/python bench/embedders_bench.py --repeat 3

Parses and chunks every document of a retrieval data set as ingestion does (`parse_document`, `chunk_document`
at the default 256 tokens), then embeds all the chunks with each built-in embedder (`offline`: wordllama;
`offline-minilm`: all-MiniLM-L6-v2 in numpy), once to load and warm, then `--repeat` times timed, and embeds each
of the set's questions alone (as search does). Reports the best run: load average and other work on the machine
slow it down, never speed it up. No database, no Django.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from retrieval_bench import load_data  # noqa: E402

from assistant_chat.embedders import minilm  # noqa: E402
from assistant_chat.embedders.offline import OfflineEmbedder  # noqa: E402
from assistant_chat.knowledge.chunking import chunk_document  # noqa: E402
from assistant_chat.knowledge.parsers import parse_document  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT / "bench" / "retrieval_dev"))
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    data = Path(args.data)
    texts = [
        chunk.text
        for path in sorted((data / "docs").iterdir())
        for chunk in chunk_document(parse_document(path.name, path.read_bytes()))
    ]
    questions = [question["question"] for question in load_data(data)[1]]
    size_kb = sum(len(text.encode()) for text in texts) / 1000
    embedders = [OfflineEmbedder()] + ([minilm.MiniLMEmbedder()] if minilm.available() else [])
    print(f"{len(texts)} chunks ({size_kb:.0f} KB of text), {len(questions)} questions; load average {os.getloadavg()}")
    print("\n| embedder | dims | chunks/s | KB/s | s per 1,000 chunks | question p50 ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for embedder in embedders:
        embedder.embed(texts[:8])  # load the weights
        best = float("inf")
        for _ in range(args.repeat):
            started = time.perf_counter()
            embedder.embed(texts)
            best = min(best, time.perf_counter() - started)
        per_question = []
        for question in questions:
            started = time.perf_counter()
            embedder.embed([question])
            per_question.append((time.perf_counter() - started) * 1000)
        print(
            f"| {embedder.model} | {embedder.dimensions} | {len(texts) / best:,.1f} | {size_kb / best:,.1f} "
            f"| {best / len(texts) * 1000:.2f} | {statistics.median(per_question):.2f} |"
        )


if __name__ == "__main__":
    main()
