"""Running a benchmark once per database engine: each engine in its own child process, on a fresh database.

Shared by bench/knowledge_bench.py and bench/retrieval_bench.py. The parent calls `run_child`, which runs the
script again with `--child --engine <engine>` (plus the script's own arguments) in a throwaway CHAT_VAR_DIR, on
SQLite or on a new PostgreSQL database that is dropped afterwards, and returns the JSON the child printed last.
The child calls `setup_django` before importing the project.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = os.environ.get("BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def run_child(script: str, engine: str, args: list[str], database_prefix: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "CHAT_VAR_DIR": tmp, "DJANGO_SECRET_KEY": "bench", "JOBS_MODE": "immediate"}
        env.pop("DATABASE_URL", None)
        database = None
        if engine == "postgres":
            import psycopg

            database = f"{database_prefix}_{os.getpid()}"
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{database}"')
                conn.execute(f'CREATE DATABASE "{database}"')
            env["DATABASE_URL"] = PG_ADMIN.rsplit("/", 1)[0] + "/" + database
        try:
            out = subprocess.run(
                [sys.executable, script, "--child", "--engine", engine, *args],
                env=env,
                cwd=ROOT,
                check=True,
                stdout=subprocess.PIPE,
                text=True,
            ).stdout
        finally:
            if database and os.environ.get("BENCH_KEEP_DATABASE"):
                print(f"kept PostgreSQL database {database} (BENCH_KEEP_DATABASE)", file=sys.stderr)
            elif database:
                import psycopg

                with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    return json.loads(out.strip().splitlines()[-1])


def setup_django() -> None:
    """Set up Django on the database `run_child` chose and migrate it."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "chatsite.settings"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
