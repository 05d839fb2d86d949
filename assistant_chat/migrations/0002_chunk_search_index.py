"""The chunk search index (knowledge/search.py): FTS5 on SQLite, a generated tsvector with GIN on PostgreSQL."""

from django.db import migrations

# The FTS rowid packs the assistant into its high bits, (assistant_id << 40) | chunk_id, so that a search is
# narrowed to one assistant by a rowid range that FTS5 applies inside the index, instead of a join per match.
# The external content is a view exposing that rowid; triggers keep the index in step with every write.
# Note: a later migration that makes Django rebuild the chunk table on SQLite drops these triggers; recreate them.
FTS_ROWID = "((%(row)s.assistant_id << 40) | %(row)s.id)"
SQLITE_FORWARD = [
    "CREATE VIEW assistant_chat_chunk_fts_source AS "
    "SELECT ((assistant_id << 40) | id) AS fts_rowid, text FROM assistant_chat_chunk",
    "CREATE VIRTUAL TABLE assistant_chat_chunk_fts USING fts5(text, content='assistant_chat_chunk_fts_source', "
    "content_rowid='fts_rowid', tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE VIRTUAL TABLE assistant_chat_chunk_fts_vocab USING fts5vocab(assistant_chat_chunk_fts, row)",
    "CREATE TRIGGER assistant_chat_chunk_fts_ai AFTER INSERT ON assistant_chat_chunk BEGIN "
    f"INSERT INTO assistant_chat_chunk_fts(rowid, text) VALUES ({FTS_ROWID % {'row': 'new'}}, new.text); END",
    "CREATE TRIGGER assistant_chat_chunk_fts_ad AFTER DELETE ON assistant_chat_chunk BEGIN "
    "INSERT INTO assistant_chat_chunk_fts(assistant_chat_chunk_fts, rowid, text) "
    f"VALUES ('delete', {FTS_ROWID % {'row': 'old'}}, old.text); END",
    "CREATE TRIGGER assistant_chat_chunk_fts_au AFTER UPDATE OF text, assistant_id ON assistant_chat_chunk BEGIN "
    "INSERT INTO assistant_chat_chunk_fts(assistant_chat_chunk_fts, rowid, text) "
    f"VALUES ('delete', {FTS_ROWID % {'row': 'old'}}, old.text); "
    f"INSERT INTO assistant_chat_chunk_fts(rowid, text) VALUES ({FTS_ROWID % {'row': 'new'}}, new.text); END",
    "INSERT INTO assistant_chat_chunk_fts(assistant_chat_chunk_fts) VALUES ('rebuild')",
]
SQLITE_BACKWARD = [
    "DROP TRIGGER IF EXISTS assistant_chat_chunk_fts_au",
    "DROP TRIGGER IF EXISTS assistant_chat_chunk_fts_ad",
    "DROP TRIGGER IF EXISTS assistant_chat_chunk_fts_ai",
    "DROP TABLE IF EXISTS assistant_chat_chunk_fts_vocab",
    "DROP TABLE IF EXISTS assistant_chat_chunk_fts",
    "DROP VIEW IF EXISTS assistant_chat_chunk_fts_source",
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
