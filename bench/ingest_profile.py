"""Where ingestion time goes: the knowledge bench's 24 files through `services.file_upload`, per engine, with the
time of each kind of SQL statement and of the pipeline's steps (and, with PROF=1, a cProfile summary; SORT and N
choose its order and length). --drop-hnsw drops the HNSW index first (PostgreSQL). Figures in docs/benchmarks.md.

    .venv/bin/python bench/ingest_profile.py --engines sqlite,postgres
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import io
import json
import os
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engine_runs import run_child, setup_django  # noqa: E402
from knowledge_bench import TextMaker  # noqa: E402


def child(engine, drop_hnsw):
    setup_django()
    from django.db import connection

    from assistant_chat import services
    from assistant_chat.knowledge import ingest

    maker = TextMaker()
    assistant = services.assistant_create(name="ingest-bench")
    files = [(f"doc{i}.txt", "\n\n".join(maker.paragraph(120) for _ in range(400)).encode()) for i in range(24)]
    if drop_hnsw and engine == "postgres":
        with connection.cursor() as c:
            c.execute("DROP INDEX assistant_chat_chunkvector_hnsw_256")
    times = collections.defaultdict(float)
    counts = collections.Counter()

    def wrapper(execute, sql, params, many, context):
        t0 = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            key = " ".join(sql.split()[:4])[:70]
            times[key] += time.perf_counter() - t0
            counts[key] += 1

    def timed(mod, name):
        orig = getattr(mod, name)

        def f(*a, **k):
            t0 = time.perf_counter()
            try:
                return orig(*a, **k)
            finally:
                times["FN " + name] += time.perf_counter() - t0
                counts["FN " + name] += 1

        setattr(mod, name, f)

    timed(ingest, "vectors_write")
    timed(ingest, "file_pages_replace")
    timed(ingest, "parse_contained")
    timed(ingest, "chunk_document")
    timed(ingest, "_chunks_write")  # PostgreSQL's COPY goes around the execute wrapper

    prof = cProfile.Profile()
    with connection.execute_wrapper(wrapper):
        t0 = time.perf_counter()
        prof.enable() if os.environ.get("PROF") else None
        for i, (name, data) in enumerate(files):
            services.file_upload(assistant=assistant, name=name, data=data, metadata={"i": i})[2].result()
        prof.disable()
        el = time.perf_counter() - t0
    s = io.StringIO()
    os.environ.get("PROF") and pstats.Stats(prof, stream=s).sort_stats(
        os.environ.get("SORT", "cumulative")
    ).print_stats(int(os.environ.get("N", "45")))
    print(s.getvalue(), file=sys.stderr)
    print(
        f"{engine} drop_hnsw={drop_hnsw} total {el:.2f}s  {sum(len(d) for _, d in files) / 1e6 / el:.2f} MB/s",
        file=sys.stderr,
    )
    for k, v in sorted(times.items(), key=lambda kv: -kv[1])[:25]:
        print(f"  {v:7.3f}s {counts[k]:6d}x  {k}", file=sys.stderr)
    print(json.dumps({}))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--engines", default="sqlite,postgres")
    p.add_argument("--child", action="store_true")
    p.add_argument("--engine")
    p.add_argument("--drop-hnsw", action="store_true")
    a = p.parse_args()
    if a.child:
        child(a.engine, a.drop_hnsw)
    else:
        for e in a.engines.split(","):
            run_child(__file__, e, ["--drop-hnsw"] if a.drop_hnsw else [], "prof_bench")
