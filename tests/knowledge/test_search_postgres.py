"""Words-only search on PostgreSQL: BM25's shape (each term's frequency weighted by its rarity), scoped to the
assistant and the filter. Runs `manage.py shell` against a database of its own, as the vector tests do."""

from __future__ import annotations

import json

import pytest

from tests.knowledge.test_vectors_postgres import database_url, manage  # noqa: F401  (the module's fixture)

pytestmark = pytest.mark.postgres

SCRIPT = r"""
import json
from assistant_chat import services
from assistant_chat.knowledge.search import search_chunks
from assistant_chat.models import File

out = {}
library = services.assistant_create(name="library")
documents = {f"filler{i}.txt": f"The quarterly report for region {i} covers sales and costs." for i in range(12)}
documents["report.txt"] = "The report, the report summary and the report appendix: report after report."
documents["zeppelin.txt"] = "A zeppelin is a rigid airship, and this report mentions it once."
for name, text in documents.items():
    services.file_upload(assistant=library, name=name, data=text.encode())[2].result(timeout=60)
names = dict(File.objects.filter(assistant=library).values_list("pk", "name"))

hits = search_chunks(assistant_id=library.pk, query="zeppelin report", limit=5)
out["rare_first"] = names[hits[0].file_pk]
out["common_second"] = names[hits[1].file_pk]
out["scores_fall"] = all(a.score >= b.score for a, b in zip(hits, hits[1:]))

only = {pk for pk, name in names.items() if name.startswith("filler")}
filtered = search_chunks(assistant_id=library.pk, query="zeppelin report", file_pks=only, limit=20)
out["filtered"] = sorted({names[h.file_pk] for h in filtered}) == sorted(n for n in documents if n.startswith("filler"))

other = services.assistant_create(name="other")
services.file_upload(assistant=other, name="zeppelin.txt", data=b"zeppelin zeppelin zeppelin")[2].result(timeout=60)
out["scoped"] = {h.file_pk for h in search_chunks(assistant_id=library.pk, query="zeppelin", limit=5)} <= set(names)
out["nothing"] = search_chunks(assistant_id=library.pk, query="submarine", limit=5)
print("RESULT " + json.dumps(out))
"""


def test_postgresql_ranks_rare_terms_above_repeated_common_ones(database_url: str) -> None:  # noqa: F811
    manage(database_url, "migrate", "--no-input")
    result = json.loads(manage(database_url, "shell", "-c", SCRIPT).split("RESULT ", 1)[1])
    # ts_rank_cd weighed "report" five times over "zeppelin" once; IDF puts the rare word's chunk first.
    assert result["rare_first"] == "zeppelin.txt"
    assert result["common_second"] == "report.txt"
    assert result["scores_fall"]
    assert result["filtered"]  # the filter holds; documents outside it never come back
    assert result["scoped"]  # another assistant's chunks never come back
    assert result["nothing"] == []
