"""Older official clients against a live Daphne server: pinecone 8.x + pinecone-plugin-assistant 3.0.3, and 9.x.

They cannot share the main venv (pinecone 10.x), so each gets its own venv under .venv-sdk/ (see
tests/support/sdk_venvs.py) and runs a standalone flow script from tests/api/sdk_scripts/ in a subprocess. The
flow mirrors tests/api/test_sdk_pinecone10.py: create, upload PDF/txt/md with metadata (sent in the query string
by these clients), list with a filter, describe with a signed URL, context with a filter and PDF pages, delete a
file and the assistant (the old clients describe right after DELETE, so the server's tombstones matter), and the
error cases (400, 404, 401) as each client's own exceptions.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from assistant_chat.knowledge.demo_documents import write_pdf
from tests.support.sdk_venvs import SdkVenvError, sdk_python
from tests.support.servers import LiveServer, require

pytestmark = pytest.mark.live

SCRIPTS = Path(__file__).resolve().parent / "sdk_scripts"
PLUGIN8_REQUIREMENTS = ["pinecone==8.1.2", "pinecone-plugin-assistant==3.0.3"]
PINECONE9_REQUIREMENTS = ["pinecone==9.1.0"]
SCRIPT_TIMEOUT = 300  # the clients sleep 5 s between some polls


def venv_python(name: str, requirements: list[str]) -> Path:
    try:
        return sdk_python(name, requirements)
    except SdkVenvError as exc:
        require(f"cannot build the {name} venv ({' '.join(requirements)}): {exc}")
        raise  # unreachable: require() skips or fails


@pytest.fixture(scope="session")
def plugin8_python() -> Path:
    return venv_python("pinecone8-plugin3", PLUGIN8_REQUIREMENTS)


@pytest.fixture(scope="session")
def pinecone9_python() -> Path:
    return venv_python("pinecone9", PINECONE9_REQUIREMENTS)


def make_files(folder: Path) -> dict[str, Path]:
    pdf = write_pdf(
        [
            "Falconry basics. A falconer trains raptors such as the peregrine falcon to hunt.",
            "Hooding and jesses. The hood calms the falcon; leather jesses are tied to its legs.",
            "Moulting season. In summer the falcon moults and grows new flight feathers.",
        ]
    )
    files = {
        "pdf": ("falconry.pdf", pdf),
        "txt": ("teapots.txt", b"Yixing teapots are made of zisha clay and are seasoned by brewing one kind of tea."),
        "md": (
            "kites.md",
            b"# Kites\n\nA box kite, invented by Lawrence Hargrave in 1893, flies steadily in strong wind.",
        ),
    }
    paths = {}
    for kind, (name, data) in files.items():
        path = folder / name
        path.write_bytes(data)
        paths[kind] = path
    return paths


def run_flow(python: Path, script: str, server: LiveServer, folder: Path) -> dict:
    paths = make_files(folder)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PINECONE_") and key not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
    }
    env["PINECONE_PLUGIN_ASSISTANT_CONTROL_HOST"] = server.url
    env["PINECONE_PLUGIN_ASSISTANT_DATA_HOST"] = server.url
    env["PYTHONUNBUFFERED"] = "1"
    command = [str(python), str(SCRIPTS / script), "--url", server.url, "--api-key", server.api_key]
    for kind, path in paths.items():
        command += [f"--{kind}", str(path)]
    try:
        result = subprocess.run(command, env=env, cwd=folder, capture_output=True, text=True, timeout=SCRIPT_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"{script} timed out after {SCRIPT_TIMEOUT}s\n--- stdout ---\n{exc.stdout}\n--- stderr ---\n{exc.stderr}"
            f"\n--- server log (tail) ---\n{server.log()}"
        )
    if result.returncode != 0:
        pytest.fail(
            f"{script} exited {result.returncode}\n--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
            f"\n--- server log (tail) ---\n{server.log()}",
            pytrace=False,
        )
    observed = json.loads(result.stdout.strip().splitlines()[-1])
    return observed


@pytest.mark.sdk8
def test_plugin8_full_flow(plugin8_python: Path, live_server_any: LiveServer, tmp_path: Path) -> None:
    observed = run_flow(plugin8_python, "flow_plugin8.py", live_server_any, tmp_path)
    assert observed["versions"] == {"pinecone": "8.1.2", "plugin": "3.0.3"}
    assert observed["context_best"]["pages"] == [2]
    assert set(observed["errors"]) == {
        "list_files_invalid_filter",
        "context_invalid_filter",
        "unknown_assistant",
        "unknown_file",
        "bad_key",
    }


def test_pinecone9_full_flow(pinecone9_python: Path, live_sqlite: LiveServer, tmp_path: Path) -> None:
    observed = run_flow(pinecone9_python, "flow_pinecone9.py", live_sqlite, tmp_path)
    assert observed["versions"] == {"pinecone": "9.1.0"}
    assert observed["context_best"]["pages"] == [2]
    assert observed["errors"]["bad_key"].startswith("UnauthorizedError")
