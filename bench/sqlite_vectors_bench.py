"""Embedded vector search, measured to choose it: exact numpy search over a cached matrix vs the sqlite-vec extension.

    /usr/bin/python3.11 -m venv /tmp/vec && /tmp/vec/bin/pip install sqlite-vec numpy
    /tmp/vec/bin/python bench/sqlite_vectors_bench.py --rows 100000

sqlite-vec needs `sqlite3.Connection.enable_load_extension`, which Debian's python3.11 has and a pyenv build
usually lacks, hence its own virtual environment. Both search the same random unit vectors (256 dimensions,
float32, 100 chunks a file), top 32, without and with a filter of 10% of the files, a query at a time, and both are
exact (sqlite-vec's vec0 is a brute-force scan). Also timed: loading the matrix from BLOBs (what a process pays
once per assistant, and again after each write to it) and inserting the rows.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args()
    rng = np.random.default_rng(5)
    n, dims, k = args.rows, 256, 32
    matrix = rng.standard_normal((n, dims)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    file_ids = np.arange(n, dtype=np.int64) // 100
    allowed = np.unique(file_ids[file_ids % 10 == 3])
    queries = rng.standard_normal((args.queries, dims)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    rows = {}

    with tempfile.NamedTemporaryFile(suffix=".sqlite3") as tmp:
        db = sqlite3.connect(tmp.name)
        db.execute("CREATE TABLE v (chunk_id INTEGER PRIMARY KEY, file_id INTEGER, embedding BLOB)")
        t0 = time.perf_counter()
        db.executemany("INSERT INTO v VALUES (?, ?, ?)", ((i, int(file_ids[i]), matrix[i].tobytes()) for i in range(n)))
        db.commit()
        rows["numpy: insert BLOB rows (s)"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        fetched = db.execute("SELECT chunk_id, file_id, embedding FROM v").fetchall()
        loaded = np.frombuffer(b"".join(r[2] for r in fetched), dtype=np.float32).reshape(len(fetched), dims)
        rows["numpy: load matrix from BLOBs (s)"] = time.perf_counter() - t0
        loaded_files = np.fromiter((r[1] for r in fetched), dtype=np.int64, count=len(fetched))

        def numpy_search(q, filtered):
            if filtered:
                idx = np.flatnonzero(np.isin(loaded_files, allowed))
                scores = loaded[idx] @ q
            else:
                idx, scores = None, loaded @ q
            top = np.argpartition(-scores, k - 1)[:k]
            top = top[np.argsort(-scores[top])]
            return idx[top] if idx is not None else top

        def timed(fn, filtered):
            fn(queries[0], filtered)
            times = []
            for q in queries:
                t = time.perf_counter()
                fn(q, filtered)
                times.append((time.perf_counter() - t) * 1000)
            return statistics.median(times)

        rows["numpy: search p50 (ms)"] = timed(numpy_search, False)
        rows["numpy: search + filter p50 (ms)"] = timed(numpy_search, True)

        import sqlite_vec

        db.enable_load_extension(True)
        sqlite_vec.load(db)
        db.enable_load_extension(False)
        db.execute(
            f"CREATE VIRTUAL TABLE vv USING vec0(embedding float[{dims}] distance_metric=cosine, file_id integer)"
        )
        t0 = time.perf_counter()
        db.executemany(
            "INSERT INTO vv(rowid, embedding, file_id) VALUES (?, ?, ?)",
            ((i, matrix[i].tobytes(), int(file_ids[i])) for i in range(n)),
        )
        db.commit()
        rows["sqlite-vec: insert rows (s)"] = time.perf_counter() - t0
        in_list = ",".join(str(int(f)) for f in allowed)

        def vec_search(q, filtered):
            where = f" AND file_id IN ({in_list})" if filtered else ""
            return db.execute(
                f"SELECT rowid, distance FROM vv WHERE embedding MATCH ? AND k = {k}{where}", [q.tobytes()]
            ).fetchall()

        rows["sqlite-vec: search p50 (ms)"] = timed(vec_search, False)
        try:
            rows["sqlite-vec: search + filter p50 (ms)"] = timed(vec_search, True)
        except sqlite3.OperationalError as exc:
            rows[f"sqlite-vec: search + filter ({exc})"] = float("nan")
        same = set(vec_search(queries[1], False)[i][0] for i in range(k)) == set(
            numpy_search(queries[1], False).tolist()
        )
        rows["same top 32 (1 = yes)"] = float(same)

    print(f"\n{n:,} vectors of {dims} dimensions, top {k}, {args.queries} queries, filter = 10% of files\n")
    print("| measure | value |\n| --- | ---: |")
    for name, value in rows.items():
        print(f"| {name} | {value:.2f} |")


if __name__ == "__main__":
    main()
