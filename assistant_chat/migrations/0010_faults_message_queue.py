"""Rooms that survive faults (issue 12): questions queue in the database, and a resent message is saved once.

- Message.status gains `queued`: a member's question waiting for its answer (another answer in the conversation is
  still streaming); `services.turn_start_next` answers the oldest first. A partial index keeps that queue cheap to
  read on every turn's end and in each process's sweep.
- Message.client_id: the sender's id for a message, unique per author when set, so a resend after a lost
  connection or a retryable error is saved once.

Adding a column makes Django rebuild the message table on SQLite, which drops the message search triggers of
migration 0005 (copied here, as migrations are frozen): they are recreated and the index rebuilt.
"""

from django.conf import settings
from django.db import migrations, models

SQLITE_TRIGGERS = [
    "DROP TRIGGER IF EXISTS assistant_chat_message_fts_ai",
    "DROP TRIGGER IF EXISTS assistant_chat_message_fts_ad",
    "DROP TRIGGER IF EXISTS assistant_chat_message_fts_au",
    "CREATE TRIGGER assistant_chat_message_fts_ai AFTER INSERT ON assistant_chat_message BEGIN "
    "INSERT INTO assistant_chat_message_fts(rowid, content) VALUES (new.id, new.content); END",
    "CREATE TRIGGER assistant_chat_message_fts_ad AFTER DELETE ON assistant_chat_message BEGIN "
    "INSERT INTO assistant_chat_message_fts(assistant_chat_message_fts, rowid, content) "
    "VALUES ('delete', old.id, old.content); END",
    "CREATE TRIGGER assistant_chat_message_fts_au AFTER UPDATE OF content ON assistant_chat_message BEGIN "
    "INSERT INTO assistant_chat_message_fts(assistant_chat_message_fts, rowid, content) "
    "VALUES ('delete', old.id, old.content); "
    "INSERT INTO assistant_chat_message_fts(rowid, content) VALUES (new.id, new.content); END",
    "INSERT INTO assistant_chat_message_fts(assistant_chat_message_fts) VALUES ('rebuild')",
]


def _restore_sqlite_search(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        for statement in SQLITE_TRIGGERS:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("assistant_chat", "0009_hostile_file_pages_and_assistant_staff"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="client_id",
            field=models.CharField(
                blank=True,
                help_text="The sender's id for this message (from the browser), so that a resend after a connection "
                "failure is recognised and saved once.",
                max_length=64,
            ),
        ),
        migrations.AlterField(
            model_name="message",
            name="status",
            field=models.CharField(
                choices=[
                    ("queued", "Queued"),
                    ("streaming", "Streaming"),
                    ("complete", "Complete"),
                    ("cancelled", "Cancelled"),
                    ("failed", "Failed"),
                    ("interrupted", "Interrupted"),
                ],
                default="complete",
                max_length=16,
            ),
        ),
        migrations.AddIndex(
            model_name="message",
            index=models.Index(
                condition=models.Q(("status", "queued")), fields=["conversation", "id"], name="message_queued"
            ),
        ),
        migrations.AddConstraint(
            model_name="message",
            constraint=models.UniqueConstraint(
                condition=models.Q(("client_id", ""), _negated=True),
                fields=("author", "client_id"),
                name="message_client_id_once",
            ),
        ),
        migrations.RunPython(_restore_sqlite_search, migrations.RunPython.noop),
    ]
