"""Conversation review (issue 5): the message search index, an index for the review list, the usage report.

Message search (assistant_chat/review/search.py) uses an FTS5 external-content table on SQLite, kept in step by
triggers, and a stored generated tsvector column with a GIN index on PostgreSQL, as migration 0002 does for chunks.
Note: a later migration that makes Django rebuild the message table on SQLite (altering a column, a constraint)
drops these triggers; recreate them there (SQLITE_TRIGGERS below) and 'rebuild' the index.
"""

from django.conf import settings
from django.db import migrations, models

SQLITE_TRIGGERS = [
    "CREATE TRIGGER assistant_chat_message_fts_ai AFTER INSERT ON assistant_chat_message BEGIN "
    "INSERT INTO assistant_chat_message_fts(rowid, content) VALUES (new.id, new.content); END",
    "CREATE TRIGGER assistant_chat_message_fts_ad AFTER DELETE ON assistant_chat_message BEGIN "
    "INSERT INTO assistant_chat_message_fts(assistant_chat_message_fts, rowid, content) "
    "VALUES ('delete', old.id, old.content); END",
    "CREATE TRIGGER assistant_chat_message_fts_au AFTER UPDATE OF content ON assistant_chat_message BEGIN "
    "INSERT INTO assistant_chat_message_fts(assistant_chat_message_fts, rowid, content) "
    "VALUES ('delete', old.id, old.content); "
    "INSERT INTO assistant_chat_message_fts(rowid, content) VALUES (new.id, new.content); END",
]
SQLITE_FORWARD = [
    "CREATE VIRTUAL TABLE assistant_chat_message_fts USING fts5(content, content='assistant_chat_message', "
    "content_rowid='id', tokenize='porter unicode61 remove_diacritics 2')",
    *SQLITE_TRIGGERS,
    "INSERT INTO assistant_chat_message_fts(assistant_chat_message_fts) VALUES ('rebuild')",
]
SQLITE_BACKWARD = [
    "DROP TRIGGER IF EXISTS assistant_chat_message_fts_au",
    "DROP TRIGGER IF EXISTS assistant_chat_message_fts_ad",
    "DROP TRIGGER IF EXISTS assistant_chat_message_fts_ai",
    "DROP TABLE IF EXISTS assistant_chat_message_fts",
]
POSTGRES_FORWARD = [
    "ALTER TABLE assistant_chat_message ADD COLUMN search_vector tsvector "
    "GENERATED ALWAYS AS (to_tsvector('english', content)) STORED",
    "CREATE INDEX assistant_chat_message_search_gin ON assistant_chat_message USING gin (search_vector)",
]
POSTGRES_BACKWARD = [
    "DROP INDEX IF EXISTS assistant_chat_message_search_gin",
    "ALTER TABLE assistant_chat_message DROP COLUMN IF EXISTS search_vector",
]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        for statement in statements_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("assistant_chat", "0004_rooms"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Usage",
            fields=[],
            options={
                "verbose_name": "usage",
                "verbose_name_plural": "usage",
                "proxy": True,
                "indexes": [],
                "constraints": [],
            },
            bases=("assistant_chat.message",),
        ),
        migrations.AddIndex(
            model_name="conversation",
            index=models.Index(fields=["updated_at", "id"], name="conversation_activity"),
        ),
        migrations.RunPython(
            _run({"sqlite": SQLITE_FORWARD, "postgresql": POSTGRES_FORWARD}),
            _run({"sqlite": SQLITE_BACKWARD, "postgresql": POSTGRES_BACKWARD}),
        ),
    ]
