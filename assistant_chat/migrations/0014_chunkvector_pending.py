"""Pending vectors (issue 15, ingestion speed): `ChunkVector.indexed`.

PostgreSQL: ingestion writes a file's vectors with `indexed = false`, outside the HNSW graph (inserting into it cost
~2 ms a row, three quarters of ingestion time), and searches scan those rows exactly (a partial btree finds them)
until the `index_vectors` job sets the flag in batches, which adds them to the graph. Every HNSW index becomes
partial on `indexed` too, so it is rebuilt here (on a large table that takes a while: see README, PostgreSQL).
SQLite searches every vector exactly anyway: the column exists, always true. Added with ALTER TABLE on both
engines (a table rebuild on SQLite would drop the generation triggers of migration 0011).
"""

from django.db import migrations, models


def _forward(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            cursor.execute("ALTER TABLE assistant_chat_chunkvector ADD COLUMN indexed bool NOT NULL DEFAULT 1")
            return
        cursor.execute("ALTER TABLE assistant_chat_chunkvector ADD COLUMN indexed boolean NOT NULL DEFAULT true")
        cursor.execute(
            "CREATE INDEX assistant_chat_chunkvector_pending ON assistant_chat_chunkvector (assistant_id, model) "
            "WHERE NOT indexed"
        )
        _rebuild_hnsw(cursor, " AND indexed")


def _backward(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("DROP INDEX IF EXISTS assistant_chat_chunkvector_pending")
            _rebuild_hnsw(cursor, "")
        cursor.execute("ALTER TABLE assistant_chat_chunkvector DROP COLUMN indexed")


def _rebuild_hnsw(cursor, extra: str) -> None:
    # Migration 0011 made the 256 one; knowledge/vectors.py `ensure_index` others, one per vector length.
    cursor.execute(
        "SELECT indexname FROM pg_indexes WHERE tablename = 'assistant_chat_chunkvector' "
        "AND indexname LIKE 'assistant_chat_chunkvector_hnsw_%%'"
    )
    for (name,) in cursor.fetchall():
        dims = int(name.rsplit("_", 1)[1])
        kind = f"vector({dims})" if dims <= 2000 else f"halfvec({dims})"
        ops = "vector_ip_ops" if dims <= 2000 else "halfvec_ip_ops"
        cursor.execute(f"DROP INDEX {name}")
        cursor.execute(
            f"CREATE INDEX {name} ON assistant_chat_chunkvector USING hnsw ((embedding::{kind}) {ops}) "
            f"WITH (m = 16, ef_construction = 64) WHERE dimensions = {dims}{extra}"
        )


class Migration(migrations.Migration):
    dependencies = [("assistant_chat", "0013_room_ux")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddField(
                    model_name="chunkvector",
                    name="indexed",
                    field=models.BooleanField(
                        db_default=True,
                        help_text="False while the vector waits for the index_vectors job to add it to the HNSW "
                        "index (PostgreSQL); it is searched exactly meanwhile. Always true on SQLite.",
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(_forward, _backward)],
        ),
    ]
