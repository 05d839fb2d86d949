"""PostgreSQL: a chunk's `search_vector` may be *pending* (NULL), filled later by the `index_words` job.

Computing it (`to_tsvector('english', text)`, ~0.25 ms a chunk) and adding it to the GIN index was the largest
cost left on ingestion's path (docs/benchmarks.md). The stored generated column becomes a plain column, values
kept (no rewrite), and a trigger keeps the old guarantee, `search_vector = to_tsvector('english', text)`, for every
insert and every change of `text`, except rows inserted in a transaction that set `assistant_chat.words_pending`
(knowledge/search.py `words_defer`; ingestion does, and queues the job in that same transaction): those stay NULL.
Word search computes the tsvector of pending rows on the fly (a partial index finds them) until the job fills
them. SQLite: nothing to do (FTS5 triggers index every write).
"""

from django.db import migrations

FORWARD = [
    "ALTER TABLE assistant_chat_chunk ALTER COLUMN search_vector DROP EXPRESSION",
    # Anything but ingestion (the ORM, the previous release's code during a rolling restart) gets the tsvector
    # written with the row, as the generated column did.
    """
    CREATE FUNCTION assistant_chat_chunk_search_vector() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'UPDATE' AND NEW.text IS NOT DISTINCT FROM OLD.text THEN
            RETURN NEW;
        END IF;
        IF TG_OP = 'INSERT' AND NEW.search_vector IS NULL
                AND current_setting('assistant_chat.words_pending', true) = 'on' THEN
            RETURN NEW;
        END IF;
        NEW.search_vector := to_tsvector('english', NEW.text);
        RETURN NEW;
    END
    $$
    """,
    "CREATE TRIGGER assistant_chat_chunk_search_vector BEFORE INSERT OR UPDATE OF text ON assistant_chat_chunk "
    "FOR EACH ROW EXECUTE FUNCTION assistant_chat_chunk_search_vector()",
    "CREATE INDEX assistant_chat_chunk_words_pending ON assistant_chat_chunk (assistant_id) "
    "WHERE search_vector IS NULL",
]
BACKWARD = [
    "DROP INDEX IF EXISTS assistant_chat_chunk_words_pending",
    "DROP TRIGGER IF EXISTS assistant_chat_chunk_search_vector ON assistant_chat_chunk",
    "DROP FUNCTION IF EXISTS assistant_chat_chunk_search_vector()",
    # PostgreSQL 15 cannot make a column generated again: the column is made anew (a table rewrite).
    "DROP INDEX IF EXISTS assistant_chat_chunk_search_gin",
    "ALTER TABLE assistant_chat_chunk DROP COLUMN search_vector",
    "ALTER TABLE assistant_chat_chunk ADD COLUMN search_vector tsvector "
    "GENERATED ALWAYS AS (to_tsvector('english', text)) STORED",
    "ALTER TABLE assistant_chat_chunk ALTER COLUMN search_vector SET STORAGE MAIN",
    "CREATE INDEX assistant_chat_chunk_search_gin ON assistant_chat_chunk USING gin (search_vector)",
]


def _run(statements):  # type: ignore[no-untyped-def]
    def run(apps, schema_editor):  # type: ignore[no-untyped-def]
        if schema_editor.connection.vendor != "postgresql":
            return
        for statement in statements:
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("assistant_chat", "0016_postgres_search_vector_inline")]

    operations = [migrations.RunPython(_run(FORWARD), _run(BACKWARD))]
