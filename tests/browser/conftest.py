"""Browser fixtures: Playwright for Python driving the system Chromium headless, against a live Daphne.

Chromium comes from the OS (`apt-get install chromium`; `.ci/run` installs it); Playwright's own browser
download is not used. Without Chromium or Playwright these tests skip with the reason, except in CI.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import ROOT, require

ARTIFACTS = ROOT / "test-artifacts"


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    require(None if path else "Chromium is not installed (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        require("Playwright for Python is not installed (pip install playwright)")
    return path or ""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Per module: the sync Playwright API keeps an event loop running in this thread while it is open, and
    pytest-asyncio cannot run the async tests of later modules under it."""
    executable = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            args=["--no-sandbox", "--disable-background-networking"],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def log_in(browser: Any, base_url: str, username: str, password: str, next_path: str, **options: Any) -> Any:
    """A new browser context (its own cookies) signed in as `username`, on `next_path`; `options` go to
    `new_context` (viewport, color_scheme, ...)."""
    # Day separators are drawn in the browser's time zone; the seeded days are UTC days.
    context = browser.new_context(base_url=base_url, **{"timezone_id": "UTC", **options})
    page = context.new_page()
    page.goto(f"/login/?next={next_path}")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"**{next_path}")
    return page


AXE_DIR = ROOT / ".cache" / "axe-core"


@pytest.fixture(scope="session")
def axe_script() -> Path:
    """axe-core's axe.min.js, from npm (`npm install axe-core@4` into .cache/, once); .ci/run installs it too."""
    script = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
    if not script.exists():
        npm = shutil.which("npm")
        require(None if npm else "npm is not installed (apt-get install npm), needed for axe-core")
        import subprocess

        AXE_DIR.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [npm or "npm", "install", "--no-audit", "--no-fund", "--prefix", str(AXE_DIR), "axe-core@4"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        require(None if script.exists() else f"axe-core could not be installed: {done.stderr[-500:]}")
    return script
