"""Full-text search over chunks: one interface, two engines chosen by the database in use.

SQLite: an FTS5 table (`assistant_chat_chunk_fts`, external content, porter stemming) kept in step with the chunk
table by triggers, ranked by FTS5's BM25; SQLite tokenizes the query's terms itself (a TEMP FTS5 table with the same
tokenizer), so no copy of its tokenizer lives here. PostgreSQL: a `tsvector` column with a GIN index (migration
0002; kept in the row since 0016), ranked with BM25's shape (`_pg_ranked`); ingestion leaves it *pending* (NULL,
migration 0017) and the `index_words` job fills it (`words_index_pending`); until then searches compute it for
the pending rows only, so they rank exactly as once filled. Callers pass an already-resolved set of file ids (the
metadata filter is applied to files, not chunks); this module knows nothing of filters or HTTP.
"""

from __future__ import annotations

import json
import logging
import re
import time
import weakref
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from django.db import DEFAULT_DB_ALIAS, ProgrammingError, connection, connections, transaction

from .pending import fill_in_batches

logger = logging.getLogger(__name__)

# Dropped from queries: they match nearly every chunk, cost the most to rank and add nothing to relevance.
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below between
    both but by can could did do does doing down during each few for from further had has have having he her here
    hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now of
    off on once only or other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up very was we were what
    when where which while who whom why will with would you your yours yourself yourselves tell please know""".split()
)
MAX_QUERY_TERMS = 32
WORD = re.compile(r"[^\W_]+", re.UNICODE)  # FTS5 breaks words at "_" too


@dataclass(frozen=True)
class Hit:
    chunk_id: int
    file_pk: int
    ordinal: int
    text: str
    pages: list[int]
    score: float


def query_terms(query: str) -> list[str]:
    """The distinct search terms of a free-text question, stopwords removed unless nothing else is left."""
    words = [w.lower() for w in WORD.findall(query)]
    seen: dict[str, None] = {}
    for word in words:
        if word not in STOPWORDS:
            seen.setdefault(word, None)
    terms = list(seen) or list(dict.fromkeys(words))
    return terms[:MAX_QUERY_TERMS]


def _normalise(raw: float) -> float:
    # Map an unbounded positive relevance onto (0, 1) so that scores read like Pinecone's.
    raw = max(raw, 0.0)
    return round(raw / (1.0 + raw), 6)


def search_chunks(
    *, assistant_id: int, query: str, file_pks: Collection[int] | None = None, limit: int = 16
) -> list[Hit]:
    """The best `limit` chunks of one assistant for `query`, best first.

    `file_pks=None` searches every file; an empty collection means the filter matched no file.
    """
    terms = query_terms(query)
    if not terms or limit <= 0 or (file_pks is not None and not file_pks):
        return []
    if connection.vendor == "postgresql":
        return _search_postgresql(assistant_id, terms, file_pks, limit)
    return _search_sqlite(assistant_id, terms, file_pks, limit)


def _file_clause(file_pks: Collection[int] | None) -> tuple[str, list[int]]:
    if file_pks is None:
        return "", []
    pks = sorted(int(pk) for pk in file_pks)
    return f" AND c.file_id IN ({','.join(['%s'] * len(pks))})", pks


# FTS5 computes BM25 row by row, so a query's cost grows with the documents its terms match. Terms are taken
# rarest first until their document counts add up to this budget (the rarest is always kept): on a small corpus
# that is every term and the ranking is exact BM25; on a large one the most common terms, whose IDF is lowest,
# are left out, which keeps a 100k-chunk search in milliseconds and changes only the tail of the ranking.
POSTINGS_BUDGET = 2000
# PostgreSQL reads and ranks each candidate's tsvector (about 10 µs a row), so it gets a smaller budget.
PG_POSTINGS_BUDGET = 600
ROWID_SHIFT = 40  # FTS rowid = (assistant_id << 40) | chunk_id (migration 0002)


def _fts_phrase(term: str) -> str:
    # Quoted, so nothing the user types is read as FTS5 query syntax.
    return '"' + term.replace('"', '""') + '"'


def _selective_terms(cursor, terms: list[str]) -> list[str]:
    """`_within_budget` over the terms' document counts, counted only as far as the budget needs.

    A term with more documents than the whole budget can only ever be kept as the rarest term, so its count is
    taken up to budget + 1 (a MATCH with a LIMIT, which stops there) instead of in full: fts5vocab counts every
    posting of a common term, which cost milliseconds per search. Only when every term is over the budget are the
    exact counts read, to keep the rarest of them, so the terms chosen are exactly those of the full counts.
    """
    if len(terms) == 1:
        return list(terms)  # the rarest term is always kept: nothing to count
    tokens = _query_tokens(cursor, terms)
    by_token = {tokens[term]: term for term in terms}  # terms with the same stem have the same documents
    budget = POSTINGS_BUDGET
    cap = budget + 1
    count_one = (
        "SELECT %s, (SELECT count(*) FROM (SELECT 1 FROM assistant_chat_chunk_fts"
        " WHERE assistant_chat_chunk_fts MATCH %s LIMIT %s))"
    )
    params: list[str | int] = []
    for token, term in by_token.items():
        params += [token, _fts_phrase(term), cap]
    cursor.execute(" UNION ALL ".join([count_one] * len(by_token)), params)
    frequency = dict(cursor.fetchall())
    if min(frequency.values(), default=0) >= cap:
        # Exact counts from the index's own vocabulary, joined in SQL on the tokens SQLite gave the terms (still in
        # the TEMP table); a term of several tokens is a phrase, found at most as often as its rarest token.
        cursor.execute(
            "SELECT q.doc, min(coalesce(v.doc, 0)) FROM temp.assistant_chat_query_vocab q"
            " LEFT JOIN assistant_chat_chunk_fts_vocab v ON v.term = q.term GROUP BY q.doc"
        )
        counted = {tokens[terms[row]]: count for row, count in cursor.fetchall()}
        frequency = {token: counted.get(token, 0) for token in frequency}
    return _within_budget(terms, {term: frequency.get(tokens[term], 0) for term in terms}, budget)


# The TEMP table that tokenizes queries; its tokenizer must stay the index's (migration 0002).
_QUERY_TABLE = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.assistant_chat_query_terms"
    " USING fts5(term, tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.assistant_chat_query_vocab"
    " USING fts5vocab(temp, assistant_chat_query_terms, instance)",
)


def _query_tokens(cursor, terms: list[str]) -> dict[str, str]:
    """Each term's tokens as SQLite's FTS5 tokenizer makes them (stemmed, folded), as one hex string per term.

    The terms are written, one row each, to a TEMP FTS5 table with the index's tokenizer (per connection, never
    shared, no lock on the main database) and read back from its `instance` vocabulary. Hex, because a porter stem
    can end in half a UTF-8 character, which Python could not decode. The table is declared on every call (about
    a microsecond when it exists): a declaration made inside a transaction that later rolled back is gone.
    Measured in bench/knowledge_bench.py.
    """
    for statement in _QUERY_TABLE:
        cursor.execute(statement)
    cursor.execute("DELETE FROM temp.assistant_chat_query_terms")
    rows = ",".join(["(%s, %s)"] * len(terms))
    cursor.execute(
        f"INSERT INTO temp.assistant_chat_query_terms(rowid, term) VALUES {rows}",
        [value for row, term in enumerate(terms) for value in (row, term)],
    )
    cursor.execute(
        "SELECT doc, group_concat(token, ' ') FROM (SELECT doc, hex(term) AS token"
        " FROM temp.assistant_chat_query_vocab ORDER BY doc, offset) GROUP BY doc"
    )
    found = dict(cursor.fetchall())
    return {term: found.get(row, "") for row, term in enumerate(terms)}


def _within_budget(terms: list[str], frequency: dict[str, float], budget: float = POSTINGS_BUDGET) -> list[str]:
    """Rarest terms first, until their document counts exceed the budget; the rarest is always kept."""
    chosen: list[str] = []
    postings = 0.0
    for term in sorted(terms, key=lambda t: frequency.get(t, 0)):
        count = frequency.get(term, 0)
        if chosen and postings + count > budget:
            break
        chosen.append(term)
        postings += count
    return chosen


# A search reads a few thousand scattered pages (index postings, and for each match its chunk row); through
# SQLite's small page cache each is a read() system call, which was most of a filtered search's time at 100k
# chunks. Mapped into memory they are read in place (pages shared with the OS cache, no extra memory use).
SQLITE_MMAP_BYTES = 1 << 30
# Per Django connection wrapper (one per thread), the SQLite connection that has been mapped.
_mapped: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _map_database(cursor) -> None:
    """Once per SQLite connection: read the database file through mmap (a no-op for in-memory databases)."""
    wrapper = connections[DEFAULT_DB_ALIAS]
    raw = wrapper.connection
    if raw is not None and _mapped.get(wrapper) is not raw:
        cursor.execute(f"PRAGMA mmap_size = {SQLITE_MMAP_BYTES}")
        _mapped[wrapper] = raw


def _search_sqlite(assistant_id: int, terms: list[str], file_pks: Collection[int] | None, limit: int) -> list[Hit]:
    low, high = assistant_id << ROWID_SHIFT, ((assistant_id + 1) << ROWID_SHIFT) - 1
    mask = (1 << ROWID_SHIFT) - 1
    file_sql, file_params = _file_clause(file_pks)
    with connection.cursor() as cursor:
        _map_database(cursor)
        match = " OR ".join(_fts_phrase(term) for term in _selective_terms(cursor, terms))
        sql = (
            "SELECT c.id, c.file_id, c.ordinal, c.text, c.pages, m.rank FROM ("
            "  SELECT rowid AS fts_rowid, bm25(assistant_chat_chunk_fts) AS rank FROM assistant_chat_chunk_fts"
            "  WHERE assistant_chat_chunk_fts MATCH %s AND rowid BETWEEN %s AND %s"
            f"  {'' if file_pks is not None else 'ORDER BY rank LIMIT %s'}"
            f") m JOIN assistant_chat_chunk c ON c.id = (m.fts_rowid & {mask}) WHERE 1=1{file_sql} "
            "ORDER BY m.rank LIMIT %s"
        )
        params: list[str | int] = [match, low, high, *([] if file_pks is not None else [limit]), *file_params, limit]
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [_hit(row, -float(row[5])) for row in rows]


# PostgreSQL keeps the most common lexemes of the tsvector column and their frequencies in pg_stats (refreshed
# by autovacuum's ANALYZE); a lexeme missing from that list is rare. Read once a minute per process.
_PG_STATS_TTL = 60.0
_pg_stats: dict[str, float] = {}
_pg_stats_read_at = -_PG_STATS_TTL
_pg_rows = 0.0
_pg_unlisted = 0.0


def _pg_common_lexemes(cursor) -> tuple[dict[str, float], float, float]:
    """Lexeme frequencies (fraction of rows), the frequency to assume for a lexeme not listed, and the row count."""
    global _pg_stats, _pg_stats_read_at, _pg_rows, _pg_unlisted
    now = time.monotonic()
    if now - _pg_stats_read_at >= _PG_STATS_TTL:
        cursor.execute(
            "SELECT s.most_common_elems::text::text[], s.most_common_elem_freqs, c.reltuples "
            "FROM pg_class c LEFT JOIN pg_stats s ON s.tablename = c.relname AND s.attname = 'search_vector' "
            "WHERE c.relname = 'assistant_chat_chunk'"
        )
        row = cursor.fetchone()
        elems, freqs, rows = row if row else (None, None, 0)
        elems, freqs = elems or [], freqs or []
        _pg_stats = dict(zip(elems, freqs, strict=False))
        # After the per-lexeme values PostgreSQL stores the minimum listed frequency: unlisted ones are rarer.
        _pg_unlisted = float(freqs[len(elems)]) / 2 if len(freqs) > len(elems) else 0.0
        _pg_rows = max(float(rows or 0), 0.0)
        _pg_stats_read_at = now
    return _pg_stats, _pg_unlisted, _pg_rows


def _search_postgresql(assistant_id: int, terms: list[str], file_pks: Collection[int] | None, limit: int) -> list[Hit]:
    file_sql, file_params = _file_clause(file_pks)
    with connection.cursor() as cursor:
        common, unlisted, rows = _pg_common_lexemes(cursor)
        if common:
            cursor.execute(
                "SELECT term, coalesce(array_to_string(tsvector_to_array(to_tsvector('english', term)), ' '), '') "
                "FROM unnest(%s::text[]) AS term",
                [terms],
            )
            lexemes = {term: words.split() for term, words in cursor.fetchall()}
            frequency = {
                term: max((common.get(lexeme, unlisted) for lexeme in lexemes.get(term, [])), default=0.0) * rows
                for term in terms
            }
            terms = _within_budget(terms, frequency, PG_POSTINGS_BUDGET)
        found = _pg_ranked(cursor, assistant_id, terms, file_sql, file_params, rows, limit)
    return [_hit(row, float(row[5]) * 10.0) for row in found]


def _pg_ranked(
    cursor, assistant_id: int, terms: list[str], file_sql: str, file_params: list[int], rows: float, limit: int
):  # type: ignore[no-untyped-def]
    """BM25's shape in SQL: each term's saturating frequency (`ts_rank` of that term alone, length-normalised)
    weighted by its IDF, summed. `ts_rank_cd` over the whole query, used before, weighs every term alike, so a
    common word counted as much as the rare one that names the answer. A term's document count is counted among
    the candidates, which hold every chunk with any term (the query is their OR), within the filter.

    Each candidate's tsvector is read in one pass that keeps only numbers (its per-term rank and match); the
    counts are summed over those. Carrying the tsvectors into a window over all candidates buffered them all
    (about 2 KB each) and took 8.3 ms against 5.1 at 100k chunks, for the same ranking (docs/benchmarks.md)."""
    # Terms are letters and digits only, so they carry no tsquery operators; '|' makes any term enough.
    # The queries are parsed once (a one-row CTE): to_tsquery in the select list would run for every candidate.
    queries = ", ".join(f"to_tsquery('english', %s) AS q{i}" for i in range(len(terms)))
    per_term = ", ".join(
        f"ts_rank(c.search_vector, q{i}, 1) AS r{i}, (c.search_vector @@ q{i})::int AS h{i}" for i in range(len(terms))
    )
    counts = ", ".join(f"sum(h{i}) AS d{i}" for i in range(len(terms)))
    if rows <= 0:  # no statistics yet (a new database): count the assistant's chunks
        cursor.execute("SELECT count(*) FROM assistant_chat_chunk WHERE assistant_id = %s", [assistant_id])
        rows = float(cursor.fetchone()[0])
    # IDF as in BM25 (Robertson-Sparck Jones, plus one so it stays positive) over the collection's size.
    size = f"{max(rows, 1.0):.1f}::float8"
    score = " + ".join(f"ln(1 + ({size} - d{i} + 0.5) / (d{i} + 0.5)) * r{i}" for i in range(len(terms)))
    # Pending rows (search_vector NULL until the index job fills it) are candidates too, their tsvector computed
    # here by the very expression the job stores, once per row (a materialised CTE; the partial index
    # assistant_chat_chunk_words_pending finds them), and ranked by the same SQL: the same scores as once filled.
    sql = (
        f"WITH queries AS MATERIALIZED (SELECT {queries}), "
        "pending AS MATERIALIZED (SELECT c.id, to_tsvector('english', c.text) AS search_vector"
        f"  FROM assistant_chat_chunk c WHERE c.search_vector IS NULL AND c.assistant_id = %s{file_sql}), "
        f"terms AS MATERIALIZED (SELECT c.id, {per_term} FROM assistant_chat_chunk c, queries"
        f"  WHERE c.search_vector @@ to_tsquery('english', %s) AND c.assistant_id = %s{file_sql}"
        f"  UNION ALL SELECT c.id, {per_term} FROM pending c, queries"
        "  WHERE c.search_vector @@ to_tsquery('english', %s)), "
        f"counts AS (SELECT {counts} FROM terms), "
        f"ranked AS (SELECT id, {score} AS rank FROM terms, counts ORDER BY rank DESC, id LIMIT %s) "
        "SELECT c.id, c.file_id, c.ordinal, c.text, c.pages, r.rank FROM ranked r "
        "JOIN assistant_chat_chunk c ON c.id = r.id ORDER BY r.rank DESC, c.id"
    )
    match = " | ".join(terms)
    params = [*terms, assistant_id, *file_params, match, assistant_id, *file_params, match, limit]
    cursor.execute(sql, params)
    return cursor.fetchall()


# Pending tsvectors filled per transaction by `words_index_pending`.
WORDS_BATCH = 1000
# The setting migration 0017's trigger reads: set, an inserted chunk keeps its search_vector NULL (pending).
_PENDING_SETTING = "assistant_chat.words_pending"


def words_defer() -> None:
    """PostgreSQL: chunks inserted from here to the end of the current transaction are written with their tsvector
    pending (computing it cost ~0.25 ms a chunk, most of the chunks' write). The caller must queue the
    `index_words` job in the same transaction, which fills them (`words_index_pending`); they are searchable
    meanwhile. A no-op on SQLite, whose FTS5 triggers index every write."""
    if connection.vendor != "postgresql":
        return
    if not connection.in_atomic_block:
        raise RuntimeError("words_defer() must be called inside the transaction that writes the chunks")
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config(%s, 'on', true)", [_PENDING_SETTING])


def words_index_pending(*, assistant_id: int | None = None, batch: int = WORDS_BATCH) -> int:
    """PostgreSQL: fill pending tsvectors (of one assistant, or all), `batch` chunks a transaction, until none is
    left; returns how many. Safe to run concurrently and again (rows another transaction holds, such as a file
    being deleted, are skipped; filled rows are never touched again) and after a crash (a batch is all or nothing;
    the rest stay pending, and searchable). 0 on SQLite."""
    if connection.vendor != "postgresql":
        return 0
    done = fill_in_batches(
        "UPDATE assistant_chat_chunk SET search_vector = to_tsvector('english', text) WHERE id IN ("
        "SELECT id FROM assistant_chat_chunk WHERE search_vector IS NULL {scope} "
        "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) AND search_vector IS NULL",
        assistant_id=assistant_id,
        batch=batch,
    )
    if done:
        _gin_flush()
    return done


def _gin_flush() -> None:
    """Move the GIN index's pending list (where fastupdate puts new entries, up to gin_pending_list_limit) into the
    index proper, so searches stop scanning it: measured on the bench's 9,600 chunks, a one-word search over a
    full list took 0.75-1.0 ms against 0.14 after this, and the fill cost the same with it (docs/benchmarks.md).
    Needs the index's owner: without that, the list is flushed as before (when full, and by autovacuum)."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT gin_clean_pending_list('assistant_chat_chunk_search_gin'::regclass)")
    except ProgrammingError:
        # Most likely not the index's owner; PostgreSQL still flushes the list when full and on vacuum.
        logger.info("could not flush the chunk GIN index's pending list", exc_info=True)


def words_pending_assistants() -> set[int]:
    """The assistants some of whose chunks wait for their tsvector (the partial index finds them; none on SQLite)."""
    if connection.vendor != "postgresql":
        return set()
    with connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT assistant_id FROM assistant_chat_chunk WHERE search_vector IS NULL")
        return {row[0] for row in cursor.fetchall()}


def words_pending_count(*, assistant_id: int | None = None) -> int:
    """How many chunks wait for their tsvector (0 on SQLite, where none ever does)."""
    if connection.vendor != "postgresql":
        return 0
    scope, params = ("AND assistant_id = %s", [assistant_id]) if assistant_id is not None else ("", [])
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM assistant_chat_chunk WHERE search_vector IS NULL {scope}", params)
        return int(cursor.fetchone()[0])


def _hit(row: tuple, raw_score: float) -> Hit:
    pages = row[4]
    if isinstance(pages, str):  # SQLite returns JSON columns as text through a raw cursor
        pages = json.loads(pages)
    return Hit(
        chunk_id=row[0],
        file_pk=row[1],
        ordinal=row[2],
        text=row[3],
        pages=list(pages or []),
        score=_normalise(raw_score),
    )


def forget_statistics() -> None:
    """Drop the cached PostgreSQL lexeme statistics (after an ANALYZE, so the next search reads them afresh)."""
    global _pg_stats_read_at
    _pg_stats_read_at = -_PG_STATS_TTL
