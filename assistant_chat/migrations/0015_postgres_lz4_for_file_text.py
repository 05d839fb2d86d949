"""PostgreSQL: a file's stored bytes (`FileBlob.data`) and viewer text (`FilePage.text`) are compressed with lz4
rather than the default pglz, which cost ~25 ms per 400 KB written against ~3 ms (issue 15: 1.2 s of the knowledge
bench's 9.4 MB ingestion), for about the same size. Rows already stored keep pglz until rewritten. A server built
without lz4 support keeps pglz (the change is skipped). SQLite: nothing to do.
"""

from django.db import migrations

COLUMNS = [("assistant_chat_fileblob", "data"), ("assistant_chat_filepage", "text")]


def _compression(method: str):  # type: ignore[no-untyped-def]
    def run(apps, schema_editor):  # type: ignore[no-untyped-def]
        connection = schema_editor.connection
        if connection.vendor != "postgresql":
            return
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_settings WHERE name = 'default_toast_compression' AND %s = ANY(enumvals)",
                [method],
            )
            if not cursor.fetchone()[0]:
                return  # this server was built without it
            for table, column in COLUMNS:
                cursor.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION {method}")

    return run


class Migration(migrations.Migration):
    dependencies = [("assistant_chat", "0014_chunkvector_pending")]

    operations = [migrations.RunPython(_compression("lz4"), _compression("pglz"))]
