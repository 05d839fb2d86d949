"""PostgreSQL: a chunk's `search_vector` is kept in the table row (storage MAIN) instead of out of line in TOAST.

A chunk's tsvector is about 2 KB, so by default it went to the TOAST table, and the word ranking read it back,
through the TOAST index, once per term for every candidate: at 100k chunks that was most of a search's time
(docs/benchmarks.md). The row's `text` moves out of line instead; it is read only for the few hits returned. The
compression stays the default (pglz stores a value uncompressed unless that saves a quarter: lz4 saved 5% on the
bench's chunks and cost a decompression per read). Rows already stored change when rewritten (`VACUUM FULL
assistant_chat_chunk`). SQLite: nothing to do.
"""

from django.db import migrations


def _storage(storage: str):  # type: ignore[no-untyped-def]
    def run(apps, schema_editor):  # type: ignore[no-untyped-def]
        if schema_editor.connection.vendor != "postgresql":
            return
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE assistant_chat_chunk ALTER COLUMN search_vector SET STORAGE {storage}")

    return run


class Migration(migrations.Migration):
    dependencies = [("assistant_chat", "0015_postgres_lz4_for_file_text")]

    operations = [migrations.RunPython(_storage("MAIN"), _storage("EXTENDED"))]
