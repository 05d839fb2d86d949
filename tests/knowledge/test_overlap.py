"""The search threads that run hybrid search's vector half beside its word half (knowledge/overlap.py): when they
are used, and that a busy pool makes the caller run the work itself instead of queueing it. The overlap itself,
on PostgreSQL's separate connections, is tested in test_vectors_postgres.py."""

from __future__ import annotations

import threading

import pytest
from django.db import transaction

from assistant_chat.knowledge import overlap


@pytest.fixture
def one_thread(settings):
    settings.SEARCH_THREADS = 1
    overlap.shutdown()
    yield
    overlap.shutdown()


def test_a_busy_pool_hands_the_work_back_to_the_caller(one_thread) -> None:
    release = threading.Event()
    first = overlap.submit(release.wait, 10)
    assert first is not None
    assert overlap.submit(lambda: "queued") is None  # the only thread is busy: the caller runs it, nothing waits
    release.set()
    assert first.result(timeout=10) is True
    follow = None
    for _ in range(100):  # the slot frees when the first task's callback has run
        follow = overlap.submit(lambda: threading.current_thread().name)
        if follow is not None:
            break
        threading.Event().wait(0.01)
    assert follow is not None and follow.result(timeout=10).startswith("search")


def test_an_error_on_a_search_thread_reaches_the_caller(one_thread) -> None:
    def fails() -> None:
        raise ValueError("vector search failed")

    future = overlap.submit(fails)
    assert future is not None
    with pytest.raises(ValueError, match="vector search failed"):
        future.result(timeout=10)


@pytest.mark.django_db
def test_not_used_inside_a_transaction_nor_on_an_in_memory_database(settings) -> None:
    settings.SEARCH_THREADS = 2
    with transaction.atomic():
        assert overlap.usable() is False  # another connection would not see this transaction's rows
    settings.SEARCH_THREADS = 0
    assert overlap.usable() is False


@pytest.mark.django_db(transaction=True)
def test_an_in_memory_sqlite_database_keeps_the_search_on_one_connection(settings) -> None:
    settings.SEARCH_THREADS = 2
    assert overlap.usable() is False  # the test database is in memory: threads would share it through its cache


@pytest.mark.django_db(transaction=True)
def test_a_search_thread_prepares_the_first_meaning_matches_only_while_the_word_search_runs(monkeypatch) -> None:
    from django.db import DatabaseError

    from assistant_chat import services
    from assistant_chat.knowledge import hybrid, rerank, word_table

    assistant = services.assistant_create(name="prepare")
    for name, text in [
        ("pets.txt", "Pets are not permitted on company premises. Guide animals are the only exception."),
        ("parking.txt", "Staff may park in the north lot after obtaining a permit from reception."),
        ("canteen.txt", "The canteen serves lunch from noon, and coffee all day long."),
    ]:
        services.file_upload(assistant=assistant, name=name, data=text.encode())[2].result(timeout=30)
    monkeypatch.setattr(rerank, "_cache", rerank.OrderedDict())
    monkeypatch.setattr(word_table, "_chunks", word_table.OrderedDict())

    done = threading.Event()
    done.set()  # the word search has answered: nothing is prepared here
    vector, dense, rows = hybrid._meaning(assistant, "Can I bring my dog?", None, 16, done)
    assert set(rows) == {hit.chunk_id for hit in dense}  # read on the thread, for fuse
    assert dense and len(rerank._cache) == 0 and len(word_table._chunks) == 0

    running = threading.Event()  # still running: the meaning matches are prepared, in the order found
    assert hybrid._meaning(assistant, "Can I bring my dog?", None, 16, running)[1] == dense
    prepared = {chunk_id for _, chunk_id, _ in rerank._cache}
    assert prepared == {hit.chunk_id for hit in dense}
    assert {chunk_id for chunk_id, _ in word_table._chunks} == prepared

    def fails(*args: object) -> None:
        raise DatabaseError("connection lost")

    monkeypatch.setattr(rerank, "prepare", fails)  # only an optimisation: the vector search's answer stands
    assert hybrid._meaning(assistant, "Can I bring my dog?", None, 16, threading.Event())[1] == dense
