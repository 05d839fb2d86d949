"""End to end with no stand-in: the OpenAI-compatible provider and the remote-Pinecone provider, each pointed at a
second instance of this server, answering through it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from pinecone import Pinecone

from assistant_chat.knowledge.demo_documents import write_pdf
from tests.support import servers
from tests.support.servers import LiveServer

pytestmark = pytest.mark.live

PAGES = [
    "Falconry basics. A falconer trains raptors such as the peregrine falcon to hunt small game.",
    "Hooding and jesses. The leather hood calms the falcon by covering its eyes during transport.",
]
QUESTION = [{"role": "user", "content": "How does the hood calm the falcon?"}]


@pytest.fixture(scope="module")
def upstream(live_sqlite: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[LiveServer, str]:
    """Instance B: an assistant that knows about falcons."""
    pc = Pinecone(api_key=live_sqlite.api_key, host=live_sqlite.url)
    name = f"up-{uuid.uuid4().hex[:8]}"
    assistant = pc.assistant.create_assistant(assistant_name=name, timeout=30)
    pdf = Path(tmp_path_factory.mktemp("upstream") / "falconry.pdf")
    pdf.write_bytes(write_pdf(PAGES))
    assistant.upload_file(file_path=str(pdf), metadata={"topic": "birds"}, timeout=60)
    return live_sqlite, name


@pytest.fixture(scope="module")
def front(upstream: tuple[LiveServer, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Instance A: its own database, configured to reach B as a remote Pinecone."""
    server_b, _name = upstream
    server = servers.start_server(
        tmp_path_factory.mktemp("front"),
        extra_env={"PINECONE_ASSISTANT_HOST": server_b.url, "PINECONE_API_KEY": server_b.api_key},
    )
    yield server
    server.stop()


def test_openai_compatible_provider_through_another_instance(
    upstream: tuple[LiveServer, str], front: LiveServer
) -> None:
    server_b, name = upstream
    # Staff register B's OpenAI-compatible endpoint as a model on A.
    front.manage(
        "shell",
        "-c",
        "from assistant_chat.models import ModelEndpoint; ModelEndpoint.objects.create("
        f"model_id='via-b', base_url='{server_b.url}/assistant/chat/{name}', upstream_model='offline', "
        f"api_key='{server_b.api_key}')",
    )
    pc = Pinecone(api_key=front.api_key, host=front.url)
    pc.assistant.create_assistant(assistant_name="front-local", timeout=30)
    client = openai.OpenAI(api_key=front.api_key, base_url=f"{front.url}/assistant/chat/front-local", max_retries=0)
    completion = client.chat.completions.create(model="via-b", messages=QUESTION)
    assert "hood calms the falcon" in completion.choices[0].message.content
    assert completion.model == "offline-extractive-1"  # B's model answered
    streamed = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in client.chat.completions.create(model="via-b", messages=QUESTION, stream=True)
        if chunk.choices
    )
    assert "hood calms the falcon" in streamed


def test_remote_pinecone_assistant_through_another_instance(
    upstream: tuple[LiveServer, str], front: LiveServer
) -> None:
    _server_b, name = upstream
    front.manage(
        "shell",
        "-c",
        f"from assistant_chat.models import Assistant; Assistant.objects.create(name='remote-birds', remote_name='{name}')",
    )
    pc = Pinecone(api_key=front.api_key, host=front.url)
    assistant = pc.assistant.describe_assistant(assistant_name="remote-birds")
    response = assistant.chat_completions(messages=QUESTION, model="offline")
    content = response.choices[0].message.content
    assert "hood calms the falcon" in content
    assert "[1, pp. 2]" in content  # B's inline citation comes through untouched
    chunks = list(assistant.chat(messages=QUESTION, model="offline", stream=True))
    text = "".join(c.delta.content for c in chunks if type(c).__name__ == "StreamContentChunk")
    assert "hood calms the falcon" in text
