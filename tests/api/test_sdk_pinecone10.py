"""The official pinecone SDK (10.x) against a live Daphne server, on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from pinecone import Pinecone
from pinecone.errors import ApiError, ForbiddenError, NotFoundError, UnauthorizedError

from assistant_chat.knowledge.demo_documents import write_pdf
from tests.support.servers import LiveServer

pytestmark = pytest.mark.live


def make_files(folder: Path) -> dict[str, Path]:
    pdf = write_pdf(
        [
            "Falconry basics. A falconer trains raptors such as the peregrine falcon to hunt.",
            "Hooding and jesses. The hood calms the falcon; leather jesses are tied to its legs.",
            "Moulting season. In summer the falcon moults and grows new flight feathers.",
        ]
    )
    files = {
        "falconry.pdf": pdf,
        "teapots.txt": b"Yixing teapots are made of zisha clay and are seasoned by brewing one kind of tea.",
        "kites.md": b"# Kites\n\nA box kite, invented by Lawrence Hargrave in 1893, flies steadily in strong wind.",
    }
    paths = {}
    for name, data in files.items():
        path = folder / name
        path.write_bytes(data)
        paths[name] = path
    return paths


def test_full_flow(live_server_any: LiveServer, tmp_path: Path) -> None:
    pc = Pinecone(api_key=live_server_any.api_key, host=live_server_any.url)
    name = f"sdk10-{uuid.uuid4().hex[:8]}"
    assistant = pc.assistant.create_assistant(assistant_name=name, instructions="be brief", timeout=30)
    assert assistant.status == "Ready"
    assert assistant.host == live_server_any.url

    paths = make_files(tmp_path)
    pdf = assistant.upload_file(
        file_path=str(paths["falconry.pdf"]), metadata={"topic": "birds", "year": 2024}, timeout=60
    )
    txt = assistant.upload_file(
        file_path=str(paths["teapots.txt"]), metadata={"topic": "tea", "year": 2019}, timeout=60
    )
    md = assistant.upload_file(file_path=str(paths["kites.md"]), metadata={"topic": "toys", "year": 2021}, timeout=60)
    assert {pdf.status, txt.status, md.status} == {"Available"}
    assert pdf.size == paths["falconry.pdf"].stat().st_size

    listed = assistant.list_files(filter={"year": {"$gte": 2021}})
    assert sorted(file.name for file in listed) == ["falconry.pdf", "kites.md"]
    assert [file.name for file in assistant.list_files(filter={"topic": "tea"})] == ["teapots.txt"]

    described = assistant.describe_file(file_id=pdf.id, include_url=True)
    assert described.metadata == {"topic": "birds", "year": 2024}
    assert described.signed_url and described.signed_url.startswith(live_server_any.url)
    import httpx

    assert httpx.get(described.signed_url).content == paths["falconry.pdf"].read_bytes()

    context = assistant.context(query="How is the falcon calmed with a hood?", top_k=3, filter={"topic": "birds"})
    assert context.snippets, context
    best = context.snippets[0]
    assert best.reference.file.name == "falconry.pdf"
    assert best.reference.pages == [2]
    assert "hood" in best.content.lower()

    # The filter really excludes: teapots are not in the birds set, even when asked about directly.
    context = assistant.context(query="zisha clay teapots", filter={"topic": "birds"})
    assert all(snippet.reference.file.name == "falconry.pdf" for snippet in context.snippets)
    context = assistant.context(query="zisha clay teapots")
    assert context.snippets[0].reference.file.name == "teapots.txt"

    assistant.delete_file(file_id=txt.id)
    with pytest.raises(NotFoundError):
        assistant.describe_file(file_id=txt.id)
    assert sorted(file.name for file in assistant.list_files()) == ["falconry.pdf", "kites.md"]

    pc.assistant.delete_assistant(assistant_name=name)
    with pytest.raises(NotFoundError):
        pc.assistant.describe_assistant(assistant_name=name)


def test_update_and_list_assistants(live_sqlite: LiveServer) -> None:
    pc = Pinecone(api_key=live_sqlite.api_key, host=live_sqlite.url)
    name = f"upd-{uuid.uuid4().hex[:8]}"
    pc.assistant.create_assistant(assistant_name=name, timeout=30)
    updated = pc.assistant.update_assistant(assistant_name=name, instructions="be verbose", metadata={"team": "x"})
    assert updated.instructions == "be verbose"
    assert pc.assistant.describe_assistant(assistant_name=name).metadata == {"team": "x"}
    assert name in [a.name for a in pc.assistant.list_assistants()]
    pc.assistant.delete_assistant(assistant_name=name)


def test_errors_arrive_as_sdk_exceptions(live_sqlite: LiveServer, tmp_path: Path) -> None:
    pc = Pinecone(api_key=live_sqlite.api_key, host=live_sqlite.url)
    name = f"err-{uuid.uuid4().hex[:8]}"
    assistant = pc.assistant.create_assistant(assistant_name=name, timeout=30)

    with pytest.raises(ApiError, match="Invalid filter"):
        assistant.list_files(filter={"metadata": {"version": "v1"}})
    with pytest.raises(ApiError, match=r"top_k must be between 1 and 64"):
        assistant.context(query="anything", top_k=65)
    with pytest.raises(ApiError, match="Invalid metadata"):
        path = tmp_path / "nulls.txt"
        path.write_text("text")
        assistant.upload_file(file_path=str(path), metadata={"bad": None}, timeout=30)
    with pytest.raises(NotFoundError):
        pc.assistant.describe_assistant(assistant_name="no-such-assistant")
    with pytest.raises(NotFoundError):
        assistant.describe_file(file_id="no-such-file")
    with pytest.raises(ApiError, match="Invalid assistant name"):
        pc.assistant.create_assistant(assistant_name="Bad_Name", timeout=-1)
    with pytest.raises(UnauthorizedError):
        Pinecone(api_key="wrong-key", host=live_sqlite.url).assistant.list_assistants()

    # A key scoped to another assistant reads nothing of this one.
    other = f"other-{uuid.uuid4().hex[:8]}"
    pc.assistant.create_assistant(assistant_name=other, timeout=30)
    scoped = Pinecone(api_key=live_sqlite.new_key(other), host=live_sqlite.url)
    with pytest.raises(ForbiddenError):
        scoped.assistant.describe_assistant(assistant_name=name)
    assert [a.name for a in scoped.assistant.list_assistants()] == [other]
    pc.assistant.delete_assistant(assistant_name=name)
    pc.assistant.delete_assistant(assistant_name=other)


def test_corrupt_pdf_fails_processing_with_a_reason(live_sqlite: LiveServer, tmp_path: Path) -> None:
    pc = Pinecone(api_key=live_sqlite.api_key, host=live_sqlite.url)
    name = f"pdf-{uuid.uuid4().hex[:8]}"
    assistant = pc.assistant.create_assistant(assistant_name=name, timeout=30)
    path = tmp_path / "broken.pdf"
    path.write_bytes(b"%PDF-1.4\nthis is not really a pdf")
    with pytest.raises(Exception, match="(?i)pdf"):
        assistant.upload_file(file_path=str(path), timeout=60)
    files = assistant.list_files()
    assert [(f.name, f.status) for f in files] == [("broken.pdf", "ProcessingFailed")]
    pc.assistant.delete_assistant(assistant_name=name)
