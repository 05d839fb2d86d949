"""Separate virtual environments for older official Pinecone clients.

The main venv has pinecone 10.x, which cannot live beside pinecone 8.x + pinecone-plugin-assistant or 9.x. The
legacy SDK tests therefore build one venv per client generation under `<repo>/.venv-sdk/<name>` (ignored by git
through `.venv-*/`), pip-install pinned requirements once, and run standalone scripts with that venv's python.

A stamp file records the requirements a venv was built with: a changed pin rebuilds it. An fcntl lock keeps
parallel test processes from building the same venv at the same time.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SDK_VENVS = ROOT / ".venv-sdk"
STAMP = ".requirements-stamp.json"


class SdkVenvError(RuntimeError):
    """The venv could not be built (typically: no network to PyPI). The message includes pip's output."""


def _run(cmd: list[str], what: str, timeout: float) -> None:
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise SdkVenvError(
            f"{what} timed out after {timeout:.0f}s: {' '.join(cmd)}\n{exc.stdout or ''}\n{exc.stderr or ''}"
        ) from exc
    if result.returncode != 0:
        raise SdkVenvError(
            f"{what} failed (exit {result.returncode}): {' '.join(cmd)}\n"
            f"--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-4000:]}"
        )


def sdk_python(name: str, requirements: list[str]) -> Path:
    """The python of venv `.venv-sdk/<name>` with exactly `requirements` installed (built once, then cached)."""
    folder = SDK_VENVS / name
    python = folder / "bin" / "python"
    stamp = folder / STAMP
    wanted = json.dumps({"python": sys.version.split()[0], "requirements": sorted(requirements)}, sort_keys=True)
    SDK_VENVS.mkdir(parents=True, exist_ok=True)
    with open(SDK_VENVS / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if python.exists() and stamp.exists() and stamp.read_text() == wanted:
            return python
        if folder.exists():
            shutil.rmtree(folder)
        _run([sys.executable, "-m", "venv", str(folder)], f"python -m venv {folder}", timeout=300)
        try:
            _run(
                [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q", *requirements],
                f"pip install {' '.join(requirements)}",
                timeout=600,
            )
        except SdkVenvError:
            shutil.rmtree(folder, ignore_errors=True)  # no half-built venv that looks usable
            raise
        stamp.write_text(wanted)  # written last: its presence means the install finished
    return python
