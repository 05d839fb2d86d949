"""Chat through the official openai and pinecone (10.x) SDKs against a live server on the offline model."""

from __future__ import annotations

import uuid
from pathlib import Path

import openai
import pytest
from pinecone import Pinecone
from pinecone.errors import ApiError, NotFoundError

from assistant_chat.knowledge.demo_documents import write_pdf
from tests.support.servers import LiveServer

pytestmark = pytest.mark.live

PAGES = [
    "Falconry basics. A falconer trains raptors such as the peregrine falcon to hunt small game.",
    "Hooding and jesses. The leather hood calms the falcon by covering its eyes during transport.",
    "Moulting season. In summer the falcon moults and grows new flight feathers over several weeks.",
]


@pytest.fixture(scope="module")
def birds(live_sqlite: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An assistant with a 3-page PDF about falcons and a text file about teapots, with metadata."""
    folder = tmp_path_factory.mktemp("chat-files")
    pc = Pinecone(api_key=live_sqlite.api_key, host=live_sqlite.url)
    name = f"chat-{uuid.uuid4().hex[:8]}"
    assistant = pc.assistant.create_assistant(assistant_name=name, timeout=30)
    pdf = Path(folder / "falconry.pdf")
    pdf.write_bytes(write_pdf(PAGES))
    assistant.upload_file(file_path=str(pdf), metadata={"topic": "birds"}, timeout=60)
    txt = Path(folder / "teapots.txt")
    txt.write_text("Yixing teapots are made of zisha clay. A falcon-shaped teapot lid is a rare collector's item.")
    assistant.upload_file(file_path=str(txt), metadata={"topic": "tea"}, timeout=60)
    return name


def test_pinecone_chat_cites_file_and_page(live_sqlite: LiveServer, birds: str) -> None:
    pc = Pinecone(api_key=live_sqlite.api_key, host=live_sqlite.url)
    assistant = pc.assistant.describe_assistant(assistant_name=birds)
    response = assistant.chat(
        messages=[{"role": "user", "content": "How does the hood calm the falcon?"}],
        model="offline",
        include_highlights=True,
    )
    assert response.model == "offline-extractive-1"
    assert "hood calms the falcon" in response.message.content
    assert "[" not in response.message.content  # markers become structured citations
    assert response.citations
    reference = response.citations[0].references[0]
    assert reference.file.name == "falconry.pdf"
    assert reference.pages == [2]
    assert reference.highlight and "hood" in reference.highlight.content
    assert 0 < response.citations[0].position <= len(response.message.content)
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens > 0


def test_pinecone_chat_stream(live_sqlite: LiveServer, birds: str) -> None:
    pc = Pinecone(api_key=live_sqlite.api_key, host=live_sqlite.url)
    assistant = pc.assistant.describe_assistant(assistant_name=birds)
    chunks = list(
        assistant.chat(
            messages=[{"role": "user", "content": "When does the falcon moult?"}], model="offline", stream=True
        )
    )
    kinds = [type(chunk).__name__ for chunk in chunks]
    assert kinds[0] == "StreamMessageStart" and kinds[-1] == "StreamMessageEnd"
    text = "".join(chunk.delta.content for chunk in chunks if type(chunk).__name__ == "StreamContentChunk")
    assert "moults" in text
    citations = [chunk.citation for chunk in chunks if type(chunk).__name__ == "StreamCitationChunk"]
    assert citations and citations[0].references[0].pages == [3]
    assert chunks[-1].finish_reason == "stop"


def test_filter_excludes_what_it_should(live_sqlite: LiveServer, birds: str) -> None:
    pc = Pinecone(api_key=live_sqlite.api_key, host=live_sqlite.url)
    assistant = pc.assistant.describe_assistant(assistant_name=birds)
    question = [{"role": "user", "content": "Tell me about the falcon-shaped teapot lid"}]
    unfiltered = assistant.chat(messages=question, model="offline")
    assert {r.file.name for c in unfiltered.citations for r in c.references} >= {"teapots.txt"}
    filtered = assistant.chat(messages=question, model="offline", filter={"topic": "birds"})
    assert all(r.file.name == "falconry.pdf" for c in filtered.citations for r in c.references)


def test_pinecone_chat_completions_inline_citations(live_sqlite: LiveServer, birds: str) -> None:
    pc = Pinecone(api_key=live_sqlite.api_key, host=live_sqlite.url)
    assistant = pc.assistant.describe_assistant(assistant_name=birds)
    response = assistant.chat_completions(
        messages=[{"role": "user", "content": "How does the hood calm the falcon?"}], model="offline"
    )
    content = response.choices[0].message.content
    assert "[1, pp. 2]" in content
    streamed = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in assistant.chat_completions(
            messages=[{"role": "user", "content": "How does the hood calm the falcon?"}], model="offline", stream=True
        )
        if chunk.choices
    )
    assert streamed == content


def test_openai_sdk_default_and_streaming(live_sqlite: LiveServer, birds: str) -> None:
    client = openai.OpenAI(api_key=live_sqlite.api_key, base_url=f"{live_sqlite.url}/assistant/chat/{birds}")
    question = [{"role": "user", "content": "How does the hood calm the falcon?"}]
    completion = client.chat.completions.create(model="offline", messages=question)
    content = completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"
    assert "hood calms the falcon" in content and "[1, pp. 2]" in content
    assert completion.usage.total_tokens > 0
    stream = client.chat.completions.create(model="offline", messages=question, stream=True)
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert streamed == content


def test_offline_model_says_when_files_hold_no_answer(live_sqlite: LiveServer, birds: str) -> None:
    client = openai.OpenAI(api_key=live_sqlite.api_key, base_url=f"{live_sqlite.url}/assistant/chat/{birds}")
    completion = client.chat.completions.create(
        model="offline", messages=[{"role": "user", "content": "What is the capital of Peru?"}]
    )
    assert "could not find" in completion.choices[0].message.content


def test_errors_arrive_as_sdk_exceptions(live_sqlite: LiveServer, birds: str) -> None:
    client = openai.OpenAI(
        api_key=live_sqlite.api_key, base_url=f"{live_sqlite.url}/assistant/chat/{birds}", max_retries=0
    )
    with pytest.raises(openai.BadRequestError, match="Message content cannot be empty"):
        client.chat.completions.create(model="offline", messages=[{"role": "user", "content": "  "}])
    with pytest.raises(openai.BadRequestError, match="Unknown model"):
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="OPENAI_API_KEY"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(api_key="wrong", base_url=client.base_url, max_retries=0).chat.completions.create(
            model="offline", messages=[{"role": "user", "content": "hi"}]
        )
    pc = Pinecone(api_key=live_sqlite.api_key, host=live_sqlite.url)
    assistant = pc.assistant.describe_assistant(assistant_name=birds)
    with pytest.raises(ApiError, match="temperature must be between 0 and 2"):
        assistant.chat(messages=[{"role": "user", "content": "hi"}], model="offline", temperature=3.0)
    with pytest.raises(ApiError, match="Invalid filter"):
        assistant.chat(messages=[{"role": "user", "content": "hi"}], model="offline", filter={"a": {"$bad": 1}})
    with pytest.raises(ApiError, match="Role 'User' is not valid"):
        assistant.chat(messages=[{"role": "User", "content": "hi"}], model="offline")
    with pytest.raises(NotFoundError):
        pc.assistant.describe_assistant(assistant_name="missing-assistant")


def test_pinecone_evaluate_alignment(live_sqlite: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # The SDK sends evaluations to PINECONE_PLUGIN_ASSISTANT_DATA_HOST, not to the assistants' host.
    monkeypatch.setenv("PINECONE_PLUGIN_ASSISTANT_DATA_HOST", live_sqlite.url)
    pc = Pinecone(api_key=live_sqlite.api_key, host=live_sqlite.url)
    result = pc.assistants.evaluate_alignment(
        question="What is the capital of Spain?", answer="Barcelona.", ground_truth_answer="Madrid."
    )
    assert result.scores.alignment == 0.0
    assert [fact.entailment for fact in result.facts] == ["contradicted"]
    right = pc.assistants.evaluate_alignment(
        question="What is the capital of Spain?", answer="Madrid is.", ground_truth_answer="Madrid."
    )
    assert (right.scores.correctness, right.scores.completeness, right.scores.alignment) == (1.0, 1.0, 1.0)
    assert right.usage.total_tokens > 0
