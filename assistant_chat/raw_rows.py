"""Reading rows of raw SQL the way the ORM would: each column through the converters Django applies to it.

Used where a hot path runs a hand-written query (the chat endpoints' key lookup, retrieval's file rows) because
compiling the ORM query cost more than running it. Imports no project module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field

Converter = Callable[[Any], Any]


def column_converters(db: BaseDatabaseWrapper, fields: Sequence[Field]) -> list[Converter]:
    """What the ORM does to each of `fields` when it reads it on `db` (e.g. SQLite's datetime text, JSON text to
    objects). Bound to that connection: callers keep one list per connection."""
    result: list[Converter] = []
    for field in fields:
        col = field.get_col(field.model._meta.db_table)
        steps = db.ops.get_db_converters(col) + col.get_db_converters(db)

        def convert(value: Any, steps: list = steps, col: Any = col) -> Any:
            for step in steps:
                value = step(value, col, db)
            return value

        result.append(convert)
    return result
