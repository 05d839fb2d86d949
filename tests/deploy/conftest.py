"""Reading the reference deployment's files as systemd and an operator would."""

from __future__ import annotations

from pathlib import Path

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def env_file(path: Path = DEPLOY / "chat.env.example") -> dict[str, str]:
    """KEY=value lines as systemd's EnvironmentFile reads them (# and ; lines are comments, values are literal)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    return values


def exec_start(unit: str) -> list[list[str]]:
    """The ExecStart command lines of a unit file, split into words (no shell: systemd runs them directly)."""
    import shlex

    lines = (DEPLOY / "systemd" / unit).read_text().splitlines()
    return [shlex.split(line.split("=", 1)[1]) for line in lines if line.startswith("ExecStart=")]
