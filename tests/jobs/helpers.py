"""Helpers for the jobs tests: a large generated document, uploads through the API, and reading a live
server's database directly (SQLite file or PostgreSQL) while its processes are being killed."""

from __future__ import annotations

import json
import random
import sqlite3
import time
from typing import Any

import httpx

from tests.support import servers

NEW_API = {"X-Pinecone-Api-Version": "2026-04"}


def big_markdown(size: int = 9_500_000, seed: int = 3) -> bytes:
    """A Markdown file of about `size` bytes: headed sections of pseudo-sentences (ingestion takes seconds)."""
    rng = random.Random(seed)
    words = ["otter", "river", "stone", "glacier", "forest", "market", "press", "honey", "comb", "dance"]
    words += [f"w{n}" for n in range(4000)]
    parts, total, section = [], 0, 0
    while total < size:
        if section % 40 == 0:
            parts.append(f"## Section {section // 40}")
        paragraph = " ".join(rng.choice(words) for _ in range(120)) + "."
        parts.append(paragraph)
        total += len(paragraph) + 2
        section += 1
    return "\n\n".join(parts).encode()[:size]


def upload(server: servers.LiveServer, name: str, data: bytes, *, timeout: float = 60) -> httpx.Response:
    return httpx.post(
        f"{server.url}/assistant/files/jobs",
        headers={"Api-Key": server.api_key, **NEW_API},
        files={"file": (name, data)},
        timeout=timeout,
    )


def create_assistant(server: servers.LiveServer) -> None:
    response = httpx.post(
        f"{server.url}/assistant/assistants", headers={"Api-Key": server.api_key}, json={"name": "jobs"}, timeout=30
    )
    assert response.status_code in (200, 201), response.text


def query(server: servers.LiveServer, sql: str, params: tuple = ()) -> list[tuple]:
    """Rows from the live server's own database (placeholders: %s)."""
    url = server.env["DATABASE_URL"]
    if url.startswith("sqlite:///"):
        connection = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30)
        try:
            return connection.execute(sql.replace("%s", "?"), params).fetchall()
        finally:
            connection.close()
    import psycopg

    with psycopg.connect(url.replace("postgres://", "postgresql://", 1)) as connection:
        return connection.execute(sql, params).fetchall()


def file_state(server: servers.LiveServer, name: str) -> dict[str, Any]:
    rows = query(
        server,
        "SELECT f.id, f.status, f.file_id, f.error_message FROM assistant_chat_file f WHERE f.name = %s",
        (name,),
    )
    if not rows:
        return {}
    pk, status, file_id, error = rows[0]
    chunks = query(
        server, "SELECT COUNT(*), COUNT(DISTINCT ordinal) FROM assistant_chat_chunk WHERE file_id = %s", (pk,)
    )
    operations = query(
        server, "SELECT status, error_message FROM assistant_chat_operation WHERE file_id = %s", (file_id,)
    )
    # The ingestion jobs only: on PostgreSQL each file also queues index_words and index_vectors jobs.
    jobs = query(
        server,
        "SELECT status, worker_ids FROM django_tasks_database_dbtaskresult"
        " WHERE task_path LIKE %s ORDER BY enqueued_at",
        ("%.ingest_file",),
    )
    return {
        "pk": pk,
        "status": status,
        "file_id": file_id,
        "error": error,
        "chunks": chunks[0][0],
        "distinct_ordinals": chunks[0][1],
        "operations": [status for status, _error in operations],
        "jobs": [(status, json.loads(ids) if isinstance(ids, str) else ids) for status, ids in jobs],
    }


def wait_for(predicate: Any, timeout: float, what: str, pause: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(pause)


def expected_chunks(data: bytes, name: str) -> int:
    """How many chunks one clean ingestion of `data` makes (the same parser and chunker, in this process)."""
    from django.conf import settings

    from assistant_chat.knowledge.chunking import chunk_document
    from assistant_chat.knowledge.parsers import parse_document

    drafts = chunk_document(
        parse_document(name, data), max_tokens=settings.CHUNK_MAX_TOKENS, overlap_tokens=settings.CHUNK_OVERLAP_TOKENS
    )
    return len(drafts)
