"""The chunk search index (knowledge/search.py): FTS5 on SQLite, a generated tsvector with GIN on PostgreSQL."""

from django.db import migrations

SQLITE_FORWARD = [
    "CREATE VIRTUAL TABLE assistant_chat_chunk_fts USING fts5("
    "text, content='assistant_chat_chunk', content_rowid='id', tokenize='porter unicode61 remove_diacritics 2')",
    # Triggers keep the index in step with every write, whoever makes it (ORM, admin, raw SQL).
    "CREATE TRIGGER assistant_chat_chunk_fts_ai AFTER INSERT ON assistant_chat_chunk BEGIN "
    "INSERT INTO assistant_chat_chunk_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER assistant_chat_chunk_fts_ad AFTER DELETE ON assistant_chat_chunk BEGIN "
    "INSERT INTO assistant_chat_chunk_fts(assistant_chat_chunk_fts, rowid, text) VALUES ('delete', old.id, old.text); END",
    "CREATE TRIGGER assistant_chat_chunk_fts_au AFTER UPDATE OF text ON assistant_chat_chunk BEGIN "
    "INSERT INTO assistant_chat_chunk_fts(assistant_chat_chunk_fts, rowid, text) VALUES ('delete', old.id, old.text); "
    "INSERT INTO assistant_chat_chunk_fts(rowid, text) VALUES (new.id, new.text); END",
    "INSERT INTO assistant_chat_chunk_fts(assistant_chat_chunk_fts) VALUES ('rebuild')",
]
SQLITE_BACKWARD = [
    "DROP TRIGGER IF EXISTS assistant_chat_chunk_fts_au",
    "DROP TRIGGER IF EXISTS assistant_chat_chunk_fts_ad",
    "DROP TRIGGER IF EXISTS assistant_chat_chunk_fts_ai",
    "DROP TABLE IF EXISTS assistant_chat_chunk_fts",
]
POSTGRES_FORWARD = [
    "ALTER TABLE assistant_chat_chunk ADD COLUMN search_vector tsvector "
    "GENERATED ALWAYS AS (to_tsvector('english', text)) STORED",
    "CREATE INDEX assistant_chat_chunk_search_gin ON assistant_chat_chunk USING gin (search_vector)",
]
POSTGRES_BACKWARD = [
    "DROP INDEX IF EXISTS assistant_chat_chunk_search_gin",
    "ALTER TABLE assistant_chat_chunk DROP COLUMN IF EXISTS search_vector",
]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        for statement in statements_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("assistant_chat", "0001_initial")]

    operations = [
        migrations.RunPython(
            _run({"sqlite": SQLITE_FORWARD, "postgresql": POSTGRES_FORWARD}),
            _run({"sqlite": SQLITE_BACKWARD, "postgresql": POSTGRES_BACKWARD}),
        ),
    ]
