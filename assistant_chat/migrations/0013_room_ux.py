"""Rooms people would choose (issue 16): versions, feedback, who stopped an answer, conversation titles and archive.

- Message.version_of / version: a regenerated answer or an edited question is a new row pointing at the first
  version of its place (numbered 2, 3, ...; unique per place); requested_by (who asked for an answer, who may stop
  it) and stopped_by (who stopped it, only on a cancelled or still streaming answer).
- MessageFeedback: one vote (up/down, optional comment) per member and answer version.
- Conversation.title_source (default/auto/manual: an automatic title never replaces a member's) and archived.
  Conversations already renamed keep their names as manual.

Adding columns makes Django rebuild the message table on SQLite, which drops the message search triggers of
migration 0005 (copied here, as migrations are frozen): they are recreated and the index rebuilt.
"""

import django.db.models.deletion
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


def titles_already_chosen(apps, schema_editor):
    """Conversations renamed before titles had a source keep their names: an automatic title never replaces them."""
    Conversation = apps.get_model("assistant_chat", "Conversation")
    Conversation.objects.exclude(title="New conversation").update(title_source="manual")


class Migration(migrations.Migration):
    dependencies = [
        ("assistant_chat", "0012_model_aliases"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="MessageFeedback",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "value",
                    models.CharField(
                        choices=[("up", "Helpful"), ("down", "Not helpful")],
                        help_text="Up (helpful) or down (not helpful).",
                        max_length=4,
                    ),
                ),
                (
                    "comment",
                    models.CharField(blank=True, help_text="Why, in the member's words (optional).", max_length=2000),
                ),
                (
                    "created_at",
                    models.DateTimeField(auto_now_add=True, help_text="When the member first voted on this answer."),
                ),
                ("updated_at", models.DateTimeField(auto_now=True, help_text="When the vote or comment last changed.")),
            ],
            options={
                "verbose_name": "feedback",
                "verbose_name_plural": "feedback",
                "ordering": ["message_id", "id"],
            },
        ),
        migrations.AddField(
            model_name="conversation",
            name="archived",
            field=models.BooleanField(
                default=False,
                help_text="Archived by its creator: left out of the room's conversation list (members can still show archived ones); staff review sees it as before.",
            ),
        ),
        migrations.AddField(
            model_name="conversation",
            name="title_source",
            field=models.CharField(
                choices=[
                    ("default", "Not named yet"),
                    ("auto", "Named automatically after the first answer"),
                    ("manual", "Named by a member"),
                ],
                default="default",
                help_text="Who named the conversation. Only an unnamed one gets an automatic title after its first answer; a member's rename is never overwritten.",
                max_length=8,
            ),
        ),
        migrations.AddField(
            model_name="message",
            name="requested_by",
            field=models.ForeignKey(
                blank=True,
                help_text="Who asked for an answer: for a question, its author or the member who asked to regenerate its answer; for an answer, copied from its question when the turn started. They may stop it.",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="message",
            name="stopped_by",
            field=models.ForeignKey(
                blank=True,
                help_text="Who stopped this answer (status cancelled). Set when the stop is asked for; cleared if the answer ended otherwise first.",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="message",
            name="version",
            field=models.PositiveIntegerField(
                default=1, help_text="1 for the first version, then 2, 3, ... in the order they were made."
            ),
        ),
        migrations.AddField(
            model_name="message",
            name="version_of",
            field=models.ForeignKey(
                blank=True,
                help_text="Empty for a message's first version. A regenerated answer or an edited question is a new row pointing at the first version of its place in the conversation; earlier versions are kept.",
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="later_versions",
                to="assistant_chat.message",
            ),
        ),
        migrations.AlterField(
            model_name="conversation",
            name="created_at",
            field=models.DateTimeField(auto_now_add=True, help_text="When the conversation was started."),
        ),
        migrations.AlterField(
            model_name="conversation",
            name="created_by",
            field=models.ForeignKey(
                blank=True,
                help_text="The member who started the conversation; only they may archive it.",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AlterField(
            model_name="message",
            name="completed_at",
            field=models.DateTimeField(blank=True, help_text="When an answer ended, however it ended.", null=True),
        ),
        migrations.AlterField(
            model_name="message",
            name="created_at",
            field=models.DateTimeField(auto_now_add=True, db_index=True, help_text="When the message was saved."),
        ),
        migrations.AddConstraint(
            model_name="conversation",
            constraint=models.CheckConstraint(
                condition=models.Q(("title_source__in", ["default", "auto", "manual"])),
                name="conversation_title_source_valid",
            ),
        ),
        migrations.AddConstraint(
            model_name="message",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("version_of__isnull", True), ("version", 1)),
                    models.Q(("version_of__isnull", False), ("version__gte", 2)),
                    _connector="OR",
                ),
                name="message_version_numbering",
            ),
        ),
        migrations.AddConstraint(
            model_name="message",
            constraint=models.UniqueConstraint(
                condition=models.Q(("version_of__isnull", False)),
                fields=("version_of", "version"),
                name="message_version_once",
            ),
        ),
        migrations.AddConstraint(
            model_name="message",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("stopped_by__isnull", True), ("status__in", ["streaming", "cancelled"]), _connector="OR"
                ),
                name="message_stopped_only_when_cancelled",
            ),
        ),
        migrations.AddField(
            model_name="messagefeedback",
            name="message",
            field=models.ForeignKey(
                help_text="The answer version voted on.",
                on_delete=django.db.models.deletion.CASCADE,
                related_name="feedback",
                to="assistant_chat.message",
            ),
        ),
        migrations.AddField(
            model_name="messagefeedback",
            name="user",
            field=models.ForeignKey(
                help_text="The member who voted.",
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddIndex(
            model_name="messagefeedback",
            index=models.Index(fields=["value", "message"], name="feedback_value_message"),
        ),
        migrations.AddConstraint(
            model_name="messagefeedback",
            constraint=models.UniqueConstraint(fields=("message", "user"), name="feedback_once_per_member"),
        ),
        migrations.AddConstraint(
            model_name="messagefeedback",
            constraint=models.CheckConstraint(
                condition=models.Q(("value__in", ["up", "down"])), name="feedback_value_valid"
            ),
        ),
        migrations.RunPython(titles_already_chosen, migrations.RunPython.noop),
        migrations.RunPython(_restore_sqlite_search, migrations.RunPython.noop),
    ]
