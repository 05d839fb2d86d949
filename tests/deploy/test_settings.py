"""Production settings come from the environment: with the documented variables (deploy/chat.env.example),
`manage.py check --deploy` is clean; without them it names what is missing."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

from tests.deploy.conftest import DEPLOY, env_file

ROOT = DEPLOY.parent


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "JOBS_", "METRICS_"))}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_documented_production_environment_passes_check_deploy(tmp_path: Path) -> None:
    env = env_file()
    assert not [value for value in env.values() if " #" in value], "systemd keeps end-of-line comments in values"
    env.update(
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),  # the operator's own, as the file says
        CHAT_VAR_DIR=str(tmp_path),
        METRICS_DIR=str(tmp_path / "metrics"),
        STATIC_ROOT=str(tmp_path / "static"),
    )
    result = check_deploy(env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_without_them_check_deploy_names_each_missing_protection(tmp_path: Path) -> None:
    result = check_deploy({"CHAT_VAR_DIR": str(tmp_path), "DJANGO_SECRET_KEY": secrets.token_urlsafe(50)})
    assert result.returncode != 0
    for code in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert code in result.stderr + result.stdout


def test_every_variable_of_the_production_file_is_documented() -> None:
    readme = (ROOT / "README.md").read_text()
    example = (ROOT / ".env.example").read_text()
    for name in env_file():
        assert name in readme or name in example, f"{name} is in deploy/chat.env.example but documented nowhere"
