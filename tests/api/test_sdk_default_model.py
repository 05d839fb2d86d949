"""The SDKs' defaults on a fresh install: no OpenAI key, bin/run's demo aliases, and chat calls that name no model
(pinecone 10.x and 9.x send gpt-4o, as does 8.x + plugin; the openai SDK sends what the caller names). Each answer
comes from the offline model and says so. Also what 10.x reads of a file (`content_hash`, wire `crc32c_hash`) and
of an assistant whose instructions were set to "".

9.x and 8.x + plugin run tests/api/sdk_scripts/chat_default_model.py in their own venvs (tests/support/sdk_venvs.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from pinecone import Pinecone

from assistant_chat import services
from tests.api.test_sdk_legacy import PINECONE9_REQUIREMENTS, PLUGIN8_REQUIREMENTS, venv_python
from tests.support import servers

pytestmark = pytest.mark.live

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).resolve().parent / "sdk_scripts" / "chat_default_model.py"
OTTERS = b"Sea otters use rocks as tools to crack open shellfish. They float on their backs while they eat."
QUESTION = "How do sea otters open shellfish?"
NO_KEYS = {"OPENAI_API_KEY": "", "ANTHROPIC_API_KEY": "", "GEMINI_API_KEY": ""}


def demo_aliases() -> str:
    """MODEL_ALIASES exactly as bin/run sets it on a machine with no provider keys."""
    command = f'source "{ROOT}/bin/_demo_aliases.sh" && demo_model_aliases'
    env = {key: value for key, value in os.environ.items() if key not in NO_KEYS}
    return subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.LiveServer]:
    aliases = demo_aliases()
    assert aliases.startswith("gpt-4o=offline,")
    server = servers.start_server(
        tmp_path_factory.mktemp("fresh-install"), extra_env={**NO_KEYS, "MODEL_ALIASES": aliases}
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def otters(fresh: servers.LiveServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("otters")
    path = folder / "otters.txt"
    path.write_bytes(OTTERS)
    pc = Pinecone(api_key=fresh.api_key, host=fresh.url)
    name = f"fresh-{uuid.uuid4().hex[:8]}"
    pc.assistant.create_assistant(assistant_name=name, timeout=30).upload_file(file_path=str(path), timeout=60)
    return name


def test_pinecone10_chat_with_no_model(fresh: servers.LiveServer, otters: str) -> None:
    pc = Pinecone(api_key=fresh.api_key, host=fresh.url)
    messages = [{"role": "user", "content": QUESTION}]
    chat = pc.assistants.chat(assistant_name=otters, messages=messages)  # sends the SDK's default, gpt-4o
    assert chat.model == "offline-extractive-1"
    assert "rocks" in chat.message.content and chat.citations
    legacy = pc.assistant.describe_assistant(assistant_name=otters).chat(messages=messages)  # sends null
    assert legacy.model == "offline-extractive-1" and "rocks" in legacy.message.content
    chunks = list(pc.assistants.chat(assistant_name=otters, messages=messages, stream=True))
    text = "".join(chunk.delta.content for chunk in chunks if type(chunk).__name__ == "StreamContentChunk")
    assert "rocks" in text
    completion = pc.assistants.chat_completions(assistant_name=otters, messages=messages)
    assert completion.model == "offline-extractive-1"
    assert "rocks" in completion.choices[0].message.content


def test_openai_sdk_with_the_default_model_or_none(fresh: servers.LiveServer, otters: str) -> None:
    client = openai.OpenAI(api_key=fresh.api_key, base_url=f"{fresh.url}/assistant/chat/{otters}")
    messages = [{"role": "user", "content": QUESTION}]
    for model in ("gpt-4o", openai.NOT_GIVEN):  # what OpenAI's examples name, and nothing at all
        completion = client.chat.completions.create(model=model, messages=messages)  # type: ignore[arg-type]
        assert completion.model == "offline-extractive-1"
        assert "rocks" in (completion.choices[0].message.content or "")
    stream = client.chat.completions.create(model="gpt-4o", messages=messages, stream=True)  # type: ignore[arg-type]
    assert "rocks" in "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


def test_an_unaliased_model_without_its_key_is_still_refused(fresh: servers.LiveServer, otters: str) -> None:
    client = openai.OpenAI(api_key=fresh.api_key, base_url=f"{fresh.url}/assistant/chat/{otters}", max_retries=0)
    with pytest.raises(openai.BadRequestError, match='Unknown model "gpt-7"'):
        client.chat.completions.create(model="gpt-7", messages=[{"role": "user", "content": QUESTION}])


def test_pinecone10_reads_the_crc32c_and_empty_instructions(fresh: servers.LiveServer, tmp_path: Path) -> None:
    pc = Pinecone(api_key=fresh.api_key, host=fresh.url)
    name = f"hash-{uuid.uuid4().hex[:8]}"
    assistant = pc.assistant.create_assistant(assistant_name=name, instructions="be brief", timeout=30)
    path = tmp_path / "otters.txt"
    path.write_bytes(OTTERS)
    uploaded = assistant.upload_file(file_path=str(path), timeout=60)
    described = pc.assistants.describe_file(assistant_name=name, file_id=uploaded.id)
    assert described.content_hash == described.crc32c_hash == services.crc32c_hash(OTTERS)
    assert [f.content_hash for f in pc.assistants.list_files(assistant_name=name)] == [services.crc32c_hash(OTTERS)]
    updated = pc.assistants.update(name=name, instructions="")
    assert updated.instructions == ""
    assert pc.assistants.describe(name=name).instructions == ""
    pc.assistants.delete(name=name, timeout=30)


def run_script(python: Path, server: servers.LiveServer, folder: Path, *extra: str) -> dict:
    txt = folder / "otters.txt"
    txt.write_bytes(OTTERS)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PINECONE_") and key not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
    }
    env |= {"PINECONE_PLUGIN_ASSISTANT_CONTROL_HOST": server.url, "PINECONE_PLUGIN_ASSISTANT_DATA_HOST": server.url}
    command = [str(python), str(SCRIPT), "--url", server.url, "--api-key", server.api_key, "--txt", str(txt), *extra]
    result = subprocess.run(command, env=env, cwd=folder, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n--- server ---\n{server.log()}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_pinecone9_chat_with_no_model(fresh: servers.LiveServer, tmp_path: Path) -> None:
    observed = run_script(venv_python("pinecone9", PINECONE9_REQUIREMENTS), fresh, tmp_path)
    assert observed["pinecone"].startswith("9.")
    assert observed["chat"]["model"] == "offline-extractive-1" and "rocks" in observed["chat"]["content"]
    assert observed["chat"]["cited"] > 0
    assert "rocks" in observed["stream_text"]
    assert observed["completion"]["model"] == "offline-extractive-1" and "rocks" in observed["completion"]["content"]


@pytest.mark.sdk8
def test_plugin8_chat_with_no_model_and_a_failed_upload_raises(fresh: servers.LiveServer, tmp_path: Path) -> None:
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4\nthis is not really a pdf")
    python = venv_python("pinecone8-plugin3", PLUGIN8_REQUIREMENTS)
    observed = run_script(python, fresh, tmp_path, "--broken-pdf", str(broken))
    assert observed["pinecone"].startswith("8.")
    assert observed["chat"]["model"] == "offline-extractive-1" and "rocks" in observed["chat"]["content"]
    assert "rocks" in observed["stream_text"]
    assert observed["completion"]["model"] == "offline-extractive-1" and "rocks" in observed["completion"]["content"]
    assert observed["broken_upload"].startswith("Exception: File processing failed"), observed["broken_upload"]
    assert "PDF" in observed["broken_upload"]
