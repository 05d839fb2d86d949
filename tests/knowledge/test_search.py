"""Search and retrieval against the real ORM (SQLite FTS5 here; PostgreSQL runs the same through the live API)."""

from __future__ import annotations

import sqlite3

import pytest
from django.db import transaction

from assistant_chat import services
from assistant_chat.knowledge import retrieval, search
from assistant_chat.knowledge.demo_documents import write_pdf
from assistant_chat.knowledge.filters import parse_filter
from assistant_chat.knowledge.search import query_terms, search_chunks
from assistant_chat.models import Assistant, Chunk, File

TOKENIZER = "porter unicode61 remove_diacritics 2"

pytestmark = pytest.mark.django_db(transaction=True)


def add(assistant: Assistant, name: str, data: bytes, metadata: dict | None = None) -> File:
    file, _op, future = services.file_upload(assistant=assistant, name=name, data=data, metadata=metadata or {})
    assert future.result(timeout=30) == File.Status.AVAILABLE
    file.refresh_from_db()
    return file


@pytest.fixture
def library() -> Assistant:
    assistant = services.assistant_create(name="library")
    add(
        assistant,
        "otters.txt",
        b"Sea otters use rocks as tools to crack open shellfish.",
        {"kind": "animal", "year": 2020},
    )
    add(
        assistant,
        "volcano.md",
        b"# Volcanoes\n\nMagma rises through the crust and erupts as lava.",
        {"kind": "earth", "year": 2022},
    )
    add(
        assistant,
        "atlas.pdf",
        write_pdf(
            ["Maps of the Alps and glaciers.", "The Sahara desert has dunes of sand.", "Otters live in rivers too."]
        ),
        {"kind": "earth", "year": 2023},
    )
    yield assistant


def test_query_terms_drop_stopwords_and_duplicates() -> None:
    assert query_terms("What is the role of the otters, the OTTERS?") == ["role", "otters"]
    assert query_terms("the and of") == ["the", "and", "of"]  # nothing left: keep the words
    assert query_terms('"; DROP TABLE x; --') == ["drop", "table", "x"]


def test_search_ranks_the_matching_chunk_first(library: Assistant) -> None:
    hits = search_chunks(assistant_id=library.pk, query="how do sea otters crack shellfish")
    assert hits
    assert File.objects.get(pk=hits[0].file_pk).name == "otters.txt"
    assert 0 < hits[0].score < 1
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)


def test_search_keeps_pdf_pages(library: Assistant) -> None:
    hits = search_chunks(assistant_id=library.pk, query="Sahara dunes")
    assert File.objects.get(pk=hits[0].file_pk).name == "atlas.pdf"
    assert hits[0].pages == [2]


def test_search_stems_words(library: Assistant) -> None:
    hits = search_chunks(assistant_id=library.pk, query="erupting volcano")
    assert File.objects.get(pk=hits[0].file_pk).name == "volcano.md"


def test_search_is_scoped_to_one_assistant(library: Assistant) -> None:
    other = services.assistant_create(name="other")
    add(other, "otters2.txt", b"Otters otters otters everywhere.")
    names = {File.objects.get(pk=hit.file_pk).name for hit in search_chunks(assistant_id=library.pk, query="otters")}
    assert names == {"otters.txt", "atlas.pdf"}


def test_search_with_empty_file_set_returns_nothing(library: Assistant) -> None:
    assert search_chunks(assistant_id=library.pk, query="otters", file_pks=[]) == []


def test_query_syntax_is_never_interpreted(library: Assistant) -> None:
    for hostile in ['otters" OR "x', "NEAR(otters volcano)", "otters*", "-otters", "'; DELETE FROM x; --", "(", '"']:
        search_chunks(assistant_id=library.pk, query=hostile)  # must not raise


def test_retrieval_applies_the_metadata_filter(library: Assistant) -> None:
    snippets = retrieval.retrieve(assistant=library, query="otters", metadata_filter=parse_filter({"kind": "earth"}))
    assert [snippet.file.name for snippet in snippets] == ["atlas.pdf"]
    assert snippets[0].pages == [3]
    snippets = retrieval.retrieve(
        assistant=library, query="otters", metadata_filter=parse_filter({"year": {"$lt": 2021}})
    )
    assert [snippet.file.name for snippet in snippets] == ["otters.txt"]
    assert retrieval.retrieve(assistant=library, query="otters", metadata_filter=parse_filter({"kind": "none"})) == []


def test_retrieval_respects_top_k(library: Assistant) -> None:
    assert len(retrieval.retrieve(assistant=library, query="otters sahara magma alps", top_k=2)) == 2


def test_deleted_file_leaves_the_index(library: Assistant) -> None:
    file = File.objects.get(name="otters.txt")
    services.file_delete(file=file)
    names = {
        File.objects.get(pk=hit.file_pk).name for hit in search_chunks(assistant_id=library.pk, query="shellfish rocks")
    }
    assert "otters.txt" not in names
    assert not Chunk.objects.filter(file=file).exists()


def test_reprocess_rebuilds_chunks(library: Assistant) -> None:
    file = File.objects.get(name="volcano.md")
    before = list(file.chunks.values_list("text", flat=True))
    assert services.file_reprocess(file=file).result(timeout=30) == File.Status.AVAILABLE
    assert list(file.chunks.values_list("text", flat=True)) == before
    hits = search_chunks(assistant_id=library.pk, query="magma")
    assert File.objects.get(pk=hits[0].file_pk).name == "volcano.md"


def test_sqlite_indexes_words_on_write_so_nothing_is_ever_pending(library: Assistant) -> None:
    # PostgreSQL leaves a new chunk's tsvector to the index_words job; FTS5's triggers index it with the row.
    assert search.words_pending_count() == 0
    assert search.words_index_pending(assistant_id=library.pk) == 0
    with transaction.atomic():
        search.words_defer()  # a no-op here: the chunk below is searchable as soon as it commits
        Chunk.objects.create(
            file=File.objects.get(name="otters.txt"), assistant=library, ordinal=7, text="Walruses dive for clams."
        )
    hits = search_chunks(assistant_id=library.pk, query="walruses")
    assert [File.objects.get(pk=hit.file_pk).name for hit in hits] == ["otters.txt"]


def test_ingestion_progress_reaches_done(library: Assistant) -> None:
    assert set(File.objects.values_list("percent_done", flat=True)) == {1.0}


@pytest.mark.parametrize("budget", [1, 2, 3, 4, 5, 100])
def test_capped_term_counts_choose_the_terms_exact_counts_would(budget: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Counts stop at budget + 1; the terms kept must be those the full fts5vocab counts keep, including when
    every term is over the budget (then the rarest is kept)."""
    from django.db import connection

    assistant = services.assistant_create(name="counts")
    words = {"alpha": 1, "beta": 2, "gamma": 3, "delta": 4}  # in how many files each word occurs
    for index in range(4):
        text = " ".join(word for word, files in words.items() if index < files)
        add(assistant, f"f{index}.txt", f"{text} filler{index}.".encode())
    monkeypatch.setattr(search, "POSTINGS_BUDGET", budget)
    for terms in (["delta", "gamma", "beta", "alpha"], ["gamma", "delta"], ["delta", "absent"], ["beta"]):
        with connection.cursor() as cursor:
            cursor.execute("SELECT term, doc FROM assistant_chat_chunk_fts_vocab")
            exact = dict(cursor.fetchall())  # these words are their own stems
            expected = search._within_budget(terms, {t: exact.get(t, 0) for t in terms}, budget)
            assert search._selective_terms(cursor, terms) == expected, (budget, terms)


def test_retrieval_returns_full_file_objects(library: Assistant) -> None:
    snippets = retrieval.retrieve(assistant=library, query="otters", metadata_filter=parse_filter({"kind": "animal"}))
    assert [s.file.name for s in snippets] == ["otters.txt"]
    expected = File.objects.get(name="otters.txt")
    for field in File._meta.concrete_fields:
        assert getattr(snippets[0].file, field.attname) == getattr(expected, field.attname), field.name


def _stored_tokens(words: list[str]) -> list[str]:
    """What FTS5 itself stores for each word, in a database of its own (hex, as `_query_tokens` gives them)."""
    db = sqlite3.connect(":memory:")
    try:
        db.execute(f"CREATE VIRTUAL TABLE t USING fts5(body, tokenize='{TOKENIZER}')")
        db.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
        db.executemany("INSERT INTO t(rowid, body) VALUES (?, ?)", ((i, w) for i, w in enumerate(words)))
        tokens = [""] * len(words)
        for doc, token in db.execute("SELECT doc, hex(term) FROM v ORDER BY doc, offset"):
            tokens[doc] = f"{tokens[doc]} {token}".strip()
        return tokens
    finally:
        db.close()


def test_the_query_tokenizer_is_the_index_tokenizer() -> None:
    """The TEMP table that tokenizes queries is declared with the index's tokenizer (migration 0002)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT sql FROM sqlite_master WHERE name = 'assistant_chat_chunk_fts'")
        assert f"tokenize='{TOKENIZER}'" in cursor.fetchone()[0]
    assert f"tokenize='{TOKENIZER}'" in search._QUERY_TABLE[0]


@pytest.mark.parametrize(
    "words",
    [
        ["running", "runs", "runner", "generously", "happiness"],  # porter stems
        ["Café", "cafe", "NAÏVE", "naïve", "Straße", "ﬁsh"],  # unicode61 folding, diacritics, ligature kept
        ["a₂ed", "x" * 80, "日本語", "e\u0301te"],  # half a UTF-8 character after stemming, long, CJK, a combining mark
    ],
)
def test_query_tokens_are_what_sqlite_stores(words: list[str]) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        tokens = search._query_tokens(cursor, words)
        assert [tokens[w] for w in words] == _stored_tokens(words)
        again = search._query_tokens(cursor, words[:1])  # the table is emptied between queries
        assert again == {words[0]: tokens[words[0]]}


def test_terms_with_one_stem_are_counted_once(library: Assistant) -> None:
    """ "rocks" and "rock" are one token: their documents are counted once against the budget, and the
    common-term fallback finds exact counts through the index's own vocabulary."""
    from django.db import connection

    with connection.cursor() as cursor:
        tokens = search._query_tokens(cursor, ["rocks", "rock", "lava"])
        assert tokens["rocks"] == tokens["rock"] != tokens["lava"]
        assert search._selective_terms(cursor, ["rocks", "rock", "lava"]) == ["rocks", "rock", "lava"]
    assert [h.text for h in search_chunks(assistant_id=library.pk, query="rock")][:1] == [
        h.text for h in search_chunks(assistant_id=library.pk, query="rocks")
    ][:1]


def test_every_term_over_the_budget_keeps_the_rarest_by_exact_count(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.db import connection

    assistant = services.assistant_create(name="exact")
    for index in range(3):
        add(assistant, f"g{index}.txt", f"{'gammas' if index < 2 else ''} deltas alphas{index}.".encode())
    monkeypatch.setattr(search, "POSTINGS_BUDGET", 0)  # every term is over it: exact counts from the vocabulary
    with connection.cursor() as cursor:
        assert search._selective_terms(cursor, ["delta", "gamma"]) == ["gamma"]
        assert search._selective_terms(cursor, ["deltas", "absentword"]) == ["absentword"]


def test_query_tokens_survive_a_rolled_back_transaction() -> None:
    """The TEMP table may be first declared inside a transaction that rolls back; the next search still works."""
    from django.db import connection, transaction

    with pytest.raises(RuntimeError), transaction.atomic(), connection.cursor() as cursor:
        search._query_tokens(cursor, ["otters"])
        raise RuntimeError("roll back")
    with connection.cursor() as cursor:
        assert search._query_tokens(cursor, ["otters", "otter"]) == {"otters": "6F74746572", "otter": "6F74746572"}
