"""Rows written *pending* and finished later by an index job (PostgreSQL): chunks' tsvectors (search.py) and
vectors outside the HNSW graph (vectors.py) are both filled the same way, a batch per transaction."""

from __future__ import annotations

from django.db import connection, transaction


def fill_in_batches(statement: str, *, assistant_id: int | None, batch: int) -> int:
    """Run `statement`, an UPDATE of at most `batch` pending rows (`%s` is the batch size) with `{scope}` where
    the rows of one assistant are chosen, one transaction at a time until a run finds fewer than `batch`; returns
    how many rows it changed. A crash loses at most the batch in flight (all or nothing); the rest stay pending."""
    scope, params = ("AND assistant_id = %s", [assistant_id]) if assistant_id is not None else ("", [])
    sql = statement.format(scope=scope)
    done = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [*params, batch])
            count = cursor.rowcount
        done += count
        if count < batch:
            return done
