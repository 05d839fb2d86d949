"""Full-text search over message content, for reviewing and exporting history: one interface, two engines.

SQLite: an FTS5 external-content table (`assistant_chat_message_fts`, porter stemming) kept in step with the
message table by triggers. PostgreSQL: a stored generated `tsvector` column with a GIN index. Both come from
migration 0005. Every word of a query must match (stemmed); newest messages come first, which the indexes serve
in order, so a common word costs no ranking. Callers scope results to rooms they checked; no HTTP here.
"""

# Raw SQL here formats in placeholders and fixed SQL only; every value is a bound parameter.
# ruff: noqa: S608, S611

from __future__ import annotations

import html
import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Q
from django.db.models.expressions import RawSQL
from django.utils.safestring import SafeString, mark_safe

from ..knowledge.search import query_terms

MAX_TERMS = 16
_START, _STOP = "\x02", "\x03"  # snippet markers no message contains; turned into <mark> after escaping


@dataclass(frozen=True)
class MessageHit:
    message_id: int
    conversation_id: int
    snippet: SafeString  # escaped text with the matching words in <mark>


def terms(query: str) -> list[str]:
    """The words a search for `query` requires (stopwords dropped unless nothing else is left)."""
    return query_terms(query or "")[:MAX_TERMS]


def _match(words: list[str]) -> str:
    if connection.vendor == "postgresql":
        return " ".join(words)  # plainto_tsquery: stems, drops stopwords, ANDs the rest; no syntax is read
    # Each word quoted, so nothing typed is read as FTS5 syntax; juxtaposed phrases are ANDed.
    return " ".join('"' + word.replace('"', '""') + '"' for word in words)


def matching_messages_sql(query: str) -> tuple[str, list[str]] | None:
    """`FROM ... WHERE ...` of the messages matching `query`, as `assistant_chat_message` (aliased `m` on SQLite,
    where the match comes from the FTS table), for selecting columns of them in one pass."""
    words = terms(query)
    if not words:
        return None
    if connection.vendor == "postgresql":
        # The indexed column is on the message row itself: no second look-up of each match by id.
        return "FROM assistant_chat_message WHERE search_vector @@ plainto_tsquery('english', %s)", [_match(words)]
    return (
        "FROM assistant_chat_message m WHERE m.id IN "
        "(SELECT rowid FROM assistant_chat_message_fts WHERE assistant_chat_message_fts MATCH %s)",
        [_match(words)],
    )


def conversations_matching(query: str) -> Q:
    """A filter for conversations holding at least one message that matches `query` (all of them if empty)."""
    found = matching_messages_sql(query)
    if found is None:
        return Q()
    sql, params = found
    return Q(pk__in=RawSQL(f"SELECT conversation_id {sql}", params))


# Past this many conversations a search filters through a subquery instead of a list of ids (a long IN list costs
# more than it saves, and SQLite caps the number of parameters).
MAX_LISTED_CONVERSATIONS = 10_000


def ids_filter(ids: list[int]) -> Q:
    """`pk IN ids` passed as one parameter (a JSON array on SQLite, an array on PostgreSQL): thousands of separate
    parameters cost more to compile than the query costs to run."""
    if connection.vendor == "postgresql":
        return Q(pk__in=RawSQL("SELECT unnest(%s::bigint[])", [ids]))
    return Q(pk__in=RawSQL("SELECT value FROM json_each(%s)", [json.dumps(ids)]))


def first_matches(query: str) -> dict[int, int] | None:
    """For every conversation holding a message that matches `query`, its first such message: {conversation id:
    message id}, read in one pass over the matches (so that the admin's count, page and snippets do not each walk
    every match again); None when more than MAX_LISTED_CONVERSATIONS conversations match, or for an empty query."""
    found = matching_messages_sql(query)
    if found is None:
        return None
    sql, params = found
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT conversation_id, min(id) {sql} GROUP BY conversation_id LIMIT %s",
            [*params, MAX_LISTED_CONVERSATIONS + 1],
        )
        rows = cursor.fetchall()
    return dict(rows) if len(rows) <= MAX_LISTED_CONVERSATIONS else None


def conversation_ids_matching(query: str) -> list[int] | None:
    """The ids of the conversations holding a message that matches `query` (see `first_matches`)."""
    first = first_matches(query)
    return None if first is None else sorted(first)


def snippets_for_messages(*, query: str, message_ids: Collection[int]) -> dict[int, MessageHit]:
    """Highlighted snippets of the given messages (known to match `query`), by conversation id."""
    words = terms(query)
    ids = sorted({int(pk) for pk in message_ids})
    if not words or not ids:
        return {}
    if connection.vendor == "postgresql":
        sql = (
            "SELECT m.id, m.conversation_id, ts_headline('english', m.content, plainto_tsquery('english', %s), %s) "
            f"FROM assistant_chat_message m WHERE m.id IN ({_placeholders(ids)})"
        )
        params: list[Any] = [_match(words), _HEADLINE_OPTIONS, *ids]
    else:
        sql = (
            "SELECT m.id, m.conversation_id, snippet(assistant_chat_message_fts, 0, %s, %s, '…', 16) "
            "FROM assistant_chat_message m CROSS JOIN assistant_chat_message_fts f ON f.rowid = m.id "
            f"WHERE m.id IN ({_placeholders(ids)}) AND assistant_chat_message_fts MATCH %s"
        )
        params = [_START, _STOP, *ids, _match(words)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {row[1]: MessageHit(row[0], row[1], _highlight(row[2])) for row in cursor.fetchall()}


def _placeholders(values: Collection[int]) -> str:
    return ",".join(["%s"] * len(values))


def search_messages(*, query: str, room_ids: Collection[int], limit: int = 50) -> list[MessageHit]:
    """The newest `limit` messages matching `query` in the given rooms (which the caller may see)."""
    words = terms(query)
    rooms = sorted({int(pk) for pk in room_ids})
    if not words or not rooms or limit <= 0:
        return []
    if connection.vendor == "postgresql":
        sql = (
            "SELECT m.id, m.conversation_id, ts_headline('english', m.content, q, %s) "
            "FROM assistant_chat_message m JOIN assistant_chat_conversation c ON c.id = m.conversation_id, "
            "plainto_tsquery('english', %s) q "
            f"WHERE m.search_vector @@ q AND c.room_id IN ({_placeholders(rooms)}) ORDER BY m.id DESC LIMIT %s"
        )
        params: list[Any] = [_HEADLINE_OPTIONS, _match(words), *rooms, limit]
    else:
        sql = (
            "SELECT m.id, m.conversation_id, snippet(assistant_chat_message_fts, 0, %s, %s, '…', 16) "
            "FROM assistant_chat_message_fts f JOIN assistant_chat_message m ON m.id = f.rowid "
            "JOIN assistant_chat_conversation c ON c.id = m.conversation_id "
            f"WHERE assistant_chat_message_fts MATCH %s AND c.room_id IN ({_placeholders(rooms)}) "
            "ORDER BY f.rowid DESC LIMIT %s"
        )
        params = [_START, _STOP, _match(words), *rooms, limit]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [MessageHit(row[0], row[1], _highlight(row[2])) for row in cursor.fetchall()]


def snippets_by_conversation(*, query: str, conversation_ids: Collection[int]) -> dict[int, MessageHit]:
    """For each conversation listed, its first message matching `query` (for a page of search results). The
    snippet is made only for that one message per conversation."""
    words = terms(query)
    ids = sorted({int(pk) for pk in conversation_ids})
    if not words or not ids:
        return {}
    if connection.vendor == "postgresql":
        first = (
            "SELECT min(m.id) FROM assistant_chat_message m, plainto_tsquery('english', %s) q "
            f"WHERE m.conversation_id IN ({_placeholders(ids)}) AND m.search_vector @@ q GROUP BY m.conversation_id"
        )
        sql = (
            "SELECT m.id, m.conversation_id, ts_headline('english', m.content, plainto_tsquery('english', %s), %s) "
            f"FROM assistant_chat_message m WHERE m.id IN ({first})"
        )
        params: list[Any] = [_match(words), _HEADLINE_OPTIONS, _match(words), *ids]
    else:
        # CROSS JOIN keeps the page's messages as the outer loop: FTS5 then checks each by rowid, instead of
        # listing every match of a common word in the whole history.
        first = (
            "SELECT min(m.id) FROM assistant_chat_message m CROSS JOIN assistant_chat_message_fts f "
            f"ON f.rowid = m.id WHERE m.conversation_id IN ({_placeholders(ids)}) "
            "AND assistant_chat_message_fts MATCH %s GROUP BY m.conversation_id"
        )
        sql = (
            "SELECT m.id, m.conversation_id, snippet(assistant_chat_message_fts, 0, %s, %s, '…', 16) "
            "FROM assistant_chat_message m CROSS JOIN assistant_chat_message_fts f ON f.rowid = m.id "
            f"WHERE m.id IN ({first}) AND assistant_chat_message_fts MATCH %s"
        )
        params = [_START, _STOP, *ids, _match(words), _match(words)]
    found: dict[int, MessageHit] = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for message_id, conversation_id, snippet in cursor.fetchall():
            found[conversation_id] = MessageHit(message_id, conversation_id, _highlight(snippet))
    return found


_HEADLINE_OPTIONS = f"StartSel={_START}, StopSel={_STOP}, MaxWords=24, MinWords=8, ShortWord=2"


def _highlight(snippet: str | None) -> SafeString:
    escaped = html.escape(snippet or "").replace(_START, "<mark>").replace(_STOP, "</mark>")
    return mark_safe(escaped)  # noqa: S308 - escaped above; only our own markers become tags
