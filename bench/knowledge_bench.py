"""Knowledge-base benchmark: ingestion throughput and search latency, SQLite and PostgreSQL, in one run.

    .venv/bin/python bench/knowledge_bench.py                  # both engines, 1k/10k/100k chunks
    .venv/bin/python bench/knowledge_bench.py --engines sqlite --sizes 1000,10000

Ingestion runs the real pipeline (parse in the contained child process, chunk, index through `services.file_upload`)
on generated text files, one file after another in this process (JOBS_MODE=immediate: the job a worker would run).
Search is measured on corpora of 1k, 10k and 100k chunks (added with bulk inserts, so that building 100k chunks
takes seconds; the index triggers and generated columns still fire per row), with and without a metadata
filter, as `search_chunks` (the lexical index query), `vector_search` (dense), `hybrid` (both fused, what retrieval
ranks by) and `retrieve` (what the context endpoint and chat call: hybrid; `retrieve, lexical only` is the earlier
path, for comparison). Chunks get offline vectors (wordllama) as ingestion would give them; on PostgreSQL the HNSW
index is rebuilt after each bulk load, as `CREATE INDEX` would build it. Embedding time per 1,000 chunks is timed
on the ingested files' real chunks.
On SQLite it also times how a query's terms get their index tokens (`query tokens`) and prints a digest of
every query's hits, so that two commits can be shown to find the same. Baselines in the same run: for search, reading every chunk that contains a query term (`LIKE %term%`) and
ranking them in Python, which is what the index saves us from; for ingestion, parse + chunk alone with no
database (the pipeline's CPU floor). Each engine runs in its own process on a fresh database.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import random
import statistics
import sys
import time

from engine_runs import ROOT, run_child, setup_django


def vocabulary(rng: random.Random, size: int = 30000) -> list[str]:
    consonants, vowels = "bcdfghklmnprstvz", "aeiou"
    words = set()
    while len(words) < size:
        length = rng.randint(2, 5)
        words.add("".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(length)))
    return sorted(words)


class TextMaker:
    """Zipf-distributed pseudo-words, so term frequencies look like a real corpus."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.words = vocabulary(self.rng)
        weights = [1.0 / (rank + 1) for rank in range(len(self.words))]
        total = sum(weights)
        self.cumulative = []
        acc = 0.0
        for weight in weights:
            acc += weight / total
            self.cumulative.append(acc)

    def sample(self, count: int) -> list[str]:
        return self.rng.choices(self.words, cum_weights=self.cumulative, k=count)

    def sentence(self) -> str:
        words = self.sample(self.rng.randint(8, 20))
        return " ".join(words).capitalize() + "."

    def paragraph(self, tokens: int) -> str:
        out, used = [], 0
        while used < tokens:
            sentence = self.sentence()
            out.append(sentence)
            used += len(sentence.split()) + 1
        return " ".join(out)

    def query(self) -> str:
        # Questions mix frequent and mid-frequency words, like real ones.
        head = self.rng.sample(self.words[:200], 1)
        mid = self.rng.sample(self.words[200:5000], self.rng.randint(2, 4))
        return "what about " + " ".join(head + mid)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def query_tokenizer(connection, query_terms):
    """How a SQLite search learns its terms' tokens: SQLite asks itself (a TEMP FTS5 table); before that commit,
    a Python mirror of FTS5's tokenizer (measured with its cache cleared, as for a new query)."""
    try:
        from assistant_chat.knowledge.search import _query_tokens
    except ImportError:  # the earlier commit, which had the mirror (named by string: it is gone from this tree)
        fts5_token = importlib.import_module("assistant_chat.knowledge.porter").fts5_token

        def mirror(query: str) -> None:
            fts5_token.cache_clear()
            [fts5_token(term) for term in query_terms(query)]

        return mirror
    cursor = connection.cursor()

    def ask_sqlite(query: str) -> None:
        _query_tokens(cursor, query_terms(query))

    return ask_sqlite


def run_engine(engine: str, sizes: list[int], queries: int) -> dict:
    setup_django()
    from django.db import connection

    from assistant_chat import services
    from assistant_chat.embedders.offline import OfflineEmbedder
    from assistant_chat.knowledge import embedding, hybrid, retrieval, search, vectors
    from assistant_chat.knowledge.chunking import chunk_document
    from assistant_chat.knowledge.filters import parse_filter
    from assistant_chat.knowledge.parsers import parse_document
    from assistant_chat.knowledge.search import forget_statistics, query_terms, search_chunks
    from assistant_chat.models import Chunk, File

    maker = TextMaker()
    results: dict = {"engine": engine, "search": []}

    # --- ingestion through the real pipeline ---
    assistant = services.assistant_create(name="ingest-bench")
    files = [(f"doc{i}.txt", "\n\n".join(maker.paragraph(120) for _ in range(400)).encode()) for i in range(24)]
    total_bytes = sum(len(data) for _, data in files)
    # Baseline: the CPU floor of the pipeline, parse + chunk with no database, one thread.
    started = time.perf_counter()
    for name, data in files:
        chunk_document(parse_document(name, data))
    floor = time.perf_counter() - started
    # PostgreSQL: the `index_vectors` job (which fills a file's tsvectors and adds its vectors to the HNSW graph after
    # the file is Available and searchable) runs inline here too, right after each file's ingestion commits; its
    # time is counted apart, so the figure is upload -> Available and searchable, and the job's cost is reported
    # next to it.
    indexing = [0.0]
    index_pending = vectors.vectors_index_pending
    words_pending = search.words_index_pending

    def timed(index):  # type: ignore[no-untyped-def]
        def run(**kwargs):  # type: ignore[no-untyped-def]
            t0 = time.perf_counter()
            try:
                return index(**kwargs)
            finally:
                indexing[0] += time.perf_counter() - t0

        return run

    vectors.vectors_index_pending = timed(index_pending)
    search.words_index_pending = timed(words_pending)
    started = time.perf_counter()
    futures = [
        services.file_upload(assistant=assistant, name=name, data=data, metadata={"i": i})[2]
        for i, (name, data) in enumerate(files)
    ]
    statuses = [future.result() for future in futures]
    elapsed = time.perf_counter() - started - indexing[0]
    vectors.vectors_index_pending = index_pending
    search.words_index_pending = words_pending
    assert set(statuses) == {"Available"}, statuses
    assert vectors.vectors_pending_count(assistant_id=assistant.pk) == 0  # every vector ended in the graph
    assert search.words_pending_count(assistant_id=assistant.pk) == 0  # every tsvector filled
    embedder = OfflineEmbedder()
    sample = list(Chunk.objects.filter(assistant=assistant).order_by("pk").values_list("text", flat=True)[:1000])
    embedder.embed(sample[:10])  # the model is loaded once per process; not part of the per-chunk cost
    started = time.perf_counter()
    embedder.embed(sample)
    results["embed_ms_per_1000"] = (time.perf_counter() - started) * 1000 * 1000 / len(sample)
    results["embed_chars_per_chunk"] = sum(len(t) for t in sample) / len(sample)
    results["ingest"] = {
        "mb": total_bytes / 1e6,
        "seconds": elapsed,
        "mb_per_s": total_bytes / 1e6 / elapsed,
        "chunks": Chunk.objects.filter(assistant=assistant).count(),
        "floor_mb_per_s": total_bytes / 1e6 / floor,
        "indexing_seconds": indexing[0],
        "with_indexing_mb_per_s": total_bytes / 1e6 / (elapsed + indexing[0]),
    }

    # --- search at growing corpus sizes ---
    corpus = services.assistant_create(name="search-bench")
    chunks_per_file = 100
    built = 0
    pending: list = []
    if engine == "postgres":
        with connection.cursor() as cursor:  # rebuilt after each bulk load below
            cursor.execute("DROP INDEX assistant_chat_chunkvector_hnsw_256")
            cursor.execute(
                "CREATE INDEX assistant_chat_chunkvector_hnsw_256 ON assistant_chat_chunkvector USING hnsw "
                "((embedding::vector(256)) vector_ip_ops) WITH (m = 16, ef_construction = 64) WHERE dimensions = 256"
            )
    query_list = [maker.query() for _ in range(queries)]

    def lexical_digest(assistant_id: int, allowed: set[int]) -> str:
        found = hashlib.sha256()
        for query in query_list:
            for hits in (
                search_chunks(assistant_id=assistant_id, query=query, limit=32),
                search_chunks(assistant_id=assistant_id, query=query, file_pks=allowed, limit=32),
            ):
                found.update(repr([(h.chunk_id, h.score) for h in hits]).encode())
        return found.hexdigest()[:16]

    metadata_filter = parse_filter({"group": 3})
    for size in sizes:
        while built < size:
            index = built // chunks_per_file
            file = File.objects.create(
                assistant=corpus,
                name=f"f{index}.txt",
                kind="text",
                size=0,
                status=File.Status.AVAILABLE,
                percent_done=1.0,
                metadata={"group": index % 10, "year": 2000 + index % 25},
            )
            made = Chunk.objects.bulk_create(
                [
                    Chunk(file=file, assistant=corpus, ordinal=o, text=maker.paragraph(200), pages=[], tokens=230)
                    for o in range(chunks_per_file)
                ],
                batch_size=500,
            )
            pending.extend(made)
            built += chunks_per_file
            if len(pending) >= 2000 or built >= size:
                vectors.vectors_write(
                    model="offline",
                    rows=[(c.pk, corpus.pk, c.file_id) for c in pending],
                    matrix=embedder.embed([c.text for c in pending]),
                )
                pending.clear()
        if engine == "postgres":
            with connection.cursor() as cursor:  # built whole, as CREATE INDEX does, not one insert at a time
                cursor.execute("SET maintenance_work_mem = '512MB'")
                cursor.execute("REINDEX INDEX assistant_chat_chunkvector_hnsw_256")
                cursor.execute("ANALYZE assistant_chat_chunkvector")
        if engine == "sqlite":
            with connection.cursor() as cursor:
                cursor.execute("INSERT INTO assistant_chat_chunk_fts(assistant_chat_chunk_fts) VALUES ('optimize')")
        else:
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE assistant_chat_chunk")
            forget_statistics()  # as if the statistics cache had expired since the last size
        allowed = {f.pk for f in File.objects.filter(assistant=corpus) if metadata_filter.matches(f.metadata)}

        def timed(fn, label: str, sample: list[str]) -> dict:
            fn(sample[0])  # warm caches
            times = []
            for query in sample:
                t0 = time.perf_counter()
                fn(query)
                times.append((time.perf_counter() - t0) * 1000)
            return {
                "size": size,
                "what": label,
                "p50_ms": statistics.median(times),
                "p99_ms": percentile(times, 99),
                "n": len(times),
            }

        def scan_and_rank(query: str, file_pks=None) -> list:
            # The textbook alternative to an index: read every chunk that contains a term and score it in Python.
            from django.db.models import Q

            terms = query_terms(query)
            condition = Q()
            for term in terms:
                condition |= Q(text__icontains=term)
            queryset = Chunk.objects.filter(condition, assistant=corpus)
            if file_pks is not None:
                queryset = queryset.filter(file_id__in=file_pks)
            scored = []
            for pk, text in queryset.values_list("id", "text").iterator():
                lowered = text.lower()
                scored.append((sum(lowered.count(term) for term in terms), pk))
            scored.sort(reverse=True)
            return scored[:32]

        def dense(query: str, file_pks=None) -> list:
            embedding._memo.clear()  # every question embedded afresh: its cost is part of the figure
            vector = embedding.query_vector("offline", query)
            return vectors.vector_search(
                assistant_id=corpus.pk, model="offline", query=vector, file_pks=file_pks, limit=32
            )

        def fused(query: str, file_pks=None) -> list:
            embedding._memo.clear()
            return hybrid.search(assistant=corpus, query=query, file_pks=file_pks, limit=32)

        row = []
        if engine == "sqlite":
            row.append(timed(query_tokenizer(connection, query_terms), "query tokens", query_list))
        row += [
            timed(lambda q: search_chunks(assistant_id=corpus.pk, query=q, limit=32), "search", query_list),
            timed(
                lambda q: search_chunks(assistant_id=corpus.pk, query=q, file_pks=allowed, limit=32),
                "search + filter",
                query_list,
            ),
            timed(lambda q: dense(q), "dense", query_list),
            timed(lambda q: dense(q, allowed), "dense + filter", query_list),
            timed(lambda q: fused(q), "hybrid", query_list),
            timed(lambda q: fused(q, allowed), "hybrid + filter", query_list),
            timed(
                lambda q: retrieval.retrieve(assistant=corpus, query=q, top_k=16, mode="lexical"),
                "retrieve, lexical only",
                query_list,
            ),
            timed(lambda q: retrieval.retrieve(assistant=corpus, query=q, top_k=16), "retrieve", query_list),
            timed(
                lambda q: retrieval.retrieve(assistant=corpus, query=q, metadata_filter=metadata_filter, top_k=16),
                "retrieve + filter",
                query_list,
            ),
            timed(lambda q: scan_and_rank(q), "baseline: scan and rank", query_list[: max(5, queries // 10)]),
            timed(
                lambda q: scan_and_rank(q, allowed),
                "baseline: scan and rank + filter",
                query_list[: max(5, queries // 10)],
            ),
        ]
        if engine == "postgres":
            # While files are being ingested their vectors are pending (searched exactly until the index job adds
            # them to the graph): the same queries with one bench file's worth (400) of the corpus pending.
            with connection.cursor() as cursor:
                cursor.execute(
                    "UPDATE assistant_chat_chunkvector SET indexed = false WHERE id IN (SELECT id FROM "
                    "assistant_chat_chunkvector WHERE assistant_id = %s ORDER BY id DESC LIMIT 400)",
                    [corpus.pk],
                )
            row += [
                timed(lambda q: dense(q), "dense, 400 pending", query_list),
                timed(lambda q: dense(q, allowed), "dense + filter, 400 pending", query_list),
                timed(lambda q: fused(q, allowed), "hybrid + filter, 400 pending", query_list),
            ]
            vectors.vectors_index_pending(assistant_id=corpus.pk)
            # Their tsvectors are pending too (computed by each word search until the job fills them): the same.
            with connection.cursor() as cursor:
                cursor.execute(
                    "UPDATE assistant_chat_chunk SET search_vector = NULL WHERE id IN (SELECT id FROM "
                    "assistant_chat_chunk WHERE assistant_id = %s ORDER BY id DESC LIMIT 400)",
                    [corpus.pk],
                )
            row += [
                timed(
                    lambda q: search_chunks(assistant_id=corpus.pk, query=q, limit=32),
                    "search, 400 words pending",
                    query_list,
                ),
                timed(
                    lambda q: search_chunks(assistant_id=corpus.pk, query=q, file_pks=allowed, limit=32),
                    "search + filter, 400 words pending",
                    query_list,
                ),
                timed(lambda q: fused(q, allowed), "hybrid + filter, 400 words pending", query_list),
            ]
            results.setdefault("pending_digests", {})[size] = lexical_digest(corpus.pk, allowed)
            search.words_index_pending(assistant_id=corpus.pk)
        results["search"].extend(row)
        # What was found, so that runs of two commits can show their results are the same.
        results.setdefault("digests", {})[size] = digest = lexical_digest(corpus.pk, allowed)
        dense_found = hashlib.sha256()
        for query in query_list:
            for hits in (fused(query), fused(query, allowed)):
                dense_found.update(repr([h.chunk_id for h in hits]).encode())
        results.setdefault("hybrid_digests", {})[size] = dense_found.hexdigest()[:16]
        print(f"{engine:8} {size:>7} results digest {digest}", file=sys.stderr)
        for item in row:
            print(
                f"{engine:8} {size:>7} {item['what']:28} p50 {item['p50_ms']:8.2f} ms  p99 {item['p99_ms']:8.2f} ms",
                file=sys.stderr,
            )
    return results


def child(args: argparse.Namespace) -> None:
    result = run_engine(args.engine, [int(s) for s in args.sizes.split(",")], args.queries)
    print(json.dumps(result))


def parent(args: argparse.Namespace) -> None:
    reports = []
    load_before = os.getloadavg()  # the machine is shared: a loaded one makes every figure slower
    for engine in args.engines.split(","):
        child_args = ["--sizes", args.sizes, "--queries", str(args.queries)]
        reports.append(run_child(__file__, engine, child_args, "chat_bench"))
    print_markdown(reports)
    print(f"\nLoad average (1 min) at start {load_before[0]:.2f}, at end {os.getloadavg()[0]:.2f}.")


def print_markdown(reports: list[dict]) -> None:
    print("\n### Ingestion (real pipeline: parse, chunk, index)\n")
    print(
        "| engine | MB of text | chunks | seconds to searchable | MB/s | background indexing (HNSW, words), s "
        "| MB/s with indexing | baseline: parse + chunk only, MB/s |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for report in reports:
        ing = report["ingest"]
        print(
            f"| {report['engine']} | {ing['mb']:.1f} | {ing['chunks']} | {ing['seconds']:.2f} | {ing['mb_per_s']:.2f} "
            f"| {ing.get('indexing_seconds', 0):.2f} | {ing.get('with_indexing_mb_per_s', ing['mb_per_s']):.2f} "
            f"| {ing['floor_mb_per_s']:.2f} |"
        )
    print("\nOffline embedding (wordllama l2_supercat_256, one thread), per 1,000 chunks of the ingested files:\n")
    for report in reports:
        if "embed_ms_per_1000" in report:
            print(
                f"- {report['engine']}: {report['embed_ms_per_1000']:.0f} ms per 1,000 chunks "
                f"({report['embed_chars_per_chunk']:.0f} characters a chunk)"
            )
    print("\n### Search latency (ms, top 32 chunks; retrieve = top 16 snippets with neighbours)\n")
    print("| engine | chunks | query | p50 | p99 | queries |")
    print("| --- | ---: | --- | ---: | ---: | ---: |")
    for report in reports:
        for row in report["search"]:
            print(
                f"| {report['engine']} | {row['size']:,} | {row['what']} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {row['n']} |"
            )
    print("\nResults digest (sha256 of every query's hits, ids and scores, with and without the filter):\n")
    for report in reports:
        for size, digest in report.get("digests", {}).items():
            print(f"- {report['engine']}, {int(size):,} chunks: `{digest}`")
    pending = [r for r in reports if r.get("pending_digests")]
    if pending:
        print("\nThe same digest with the last 400 chunks' tsvectors pending (it must equal the one above):\n")
        for report in pending:
            for size, digest in report["pending_digests"].items():
                print(f"- {report['engine']}, {int(size):,} chunks: `{digest}`")
    print("\nHybrid results digest (chunk ids of every query's fused hits, with and without the filter):\n")
    for report in reports:
        for size, digest in report.get("hybrid_digests", {}).items():
            print(f"- {report['engine']}, {int(size):,} chunks: `{digest}`")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--queries", type=int, default=200)
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
