"""Helpers shared by the room UX browser tests: a seeded live server, members at a viewport, and checks of what
is on screen. Every page function is passed as a function (the pages' Content-Security-Policy forbids eval)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import log_in
from tests.support import servers

SEED = Path(__file__).with_name("seed_ux.py")
VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
PASSWORDS = {"alice": "alice-pw-1", "bob": "bob-pw-1", "carol": "carol-pw-1", "staff": "staff-pw-1"}

# What copying put on the clipboard, kept by the page (the clipboard itself is the OS's, not readable headless).
RECORD_COPIES = """
(() => {
  // The page's sockets, so a test can hand the page a frame at a moment of its choosing.
  const Native = window.WebSocket;
  window.__sockets = [];
  window.WebSocket = function (...args) { const s = new Native(...args); window.__sockets.push(s); return s; };
  window.WebSocket.prototype = Native.prototype;
  Object.assign(window.WebSocket, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
  const keep = (text) => { window.__copied = text; };
  if (navigator.clipboard) {
    const write = navigator.clipboard.writeText.bind(navigator.clipboard);
    navigator.clipboard.writeText = (text) => { keep(text); return write(text).catch(() => undefined); };
  }
  const exec = document.execCommand.bind(document);
  document.execCommand = (name, ...rest) => {
    if (name === "copy" && document.activeElement) keep(document.activeElement.value);
    return exec(name, ...rest);
  };
})();
"""


def start_site(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[tuple[servers.LiveServer, dict]]:
    server = servers.start_server(
        tmp_path_factory.mktemp(name),
        extra_env={
            # Answers stream for a few seconds: long enough to watch, scroll and stop.
            "OFFLINE_MODEL_WORDS_PER_SECOND": "12",
            "CHAT_RATE_LIMIT_MESSAGES": "1000",
            "CHAT_RATE_LIMIT_CONVERSATIONS": "1000",
        },
    )
    seeded = json.loads(server.manage("shell", "-c", SEED.read_text()).strip().splitlines()[-1])
    yield server, seeded
    server.stop()


def member(
    browser: Any, server: servers.LiveServer, name: str, path: str, viewport: str = "desktop", **options: Any
) -> Any:
    """`name` signed in, on `path` at the viewport, with the room socket connected when it is a room page."""
    page = log_in(browser, server.url, name, PASSWORDS[name], path, viewport=VIEWPORTS[viewport], **options)
    page.context.add_init_script(RECORD_COPIES)
    page.reload()
    if "/rooms/" in path:
        page.wait_for_selector("#connection:has-text('Connected')")
    return page


def ask(page: Any, text: str) -> int:
    """Send `text` from the composer; returns the id of the newest answer before it (to wait past)."""
    before = last_answer_id(page)
    page.fill("#composer-input", text)
    page.press("#composer-input", "Enter")
    return before


def last_answer_id(page: Any) -> int:
    return page.evaluate(
        "() => { const a = [...document.querySelectorAll('li.message.assistant')].pop(); return a ? Number(a.dataset.id) : 0; }"
    )


def wait_streaming(page: Any, after: int) -> Any:
    page.wait_for_function(
        "(after) => { const a = [...document.querySelectorAll('li.message.assistant')].pop();"
        " return a && Number(a.dataset.id) > after && a.dataset.status === 'streaming'"
        " && a.querySelector('.tail, .blocks') && a.textContent.split(' ').length > 6; }",
        arg=after,
        timeout=30_000,
    )
    return page.locator("li.message.assistant").last


def wait_answer(page: Any, after: int) -> Any:
    page.wait_for_function(
        "(after) => { const a = [...document.querySelectorAll('li.message.assistant')].pop();"
        " return a && Number(a.dataset.id) > after && a.dataset.status !== 'streaming'; }",
        arg=after,
        timeout=60_000,
    )
    return page.locator("li.message.assistant").last


def newest_and_composer_visible(page: Any) -> dict:
    """Where the newest message and the composer are, against the viewport and the pane."""
    return page.evaluate(
        """() => {
          const items = document.querySelectorAll('#messages li.message');
          const last = items[items.length - 1].getBoundingClientRect();
          const pane = document.getElementById('pane').getBoundingClientRect();
          const status = items[items.length - 1].dataset.status;
          const composer = document.getElementById('composer').getBoundingClientRect();
          return {
            newestBottom: last.bottom, newestTop: last.top, paneTop: pane.top, paneBottom: pane.bottom,
            composerTop: composer.top, composerBottom: composer.bottom, height: window.innerHeight, status: status,
          };
        }"""
    )


def assert_newest_and_composer_in_view(page: Any, streaming: bool = False) -> None:
    """Measured in one step with the newest message's status: `streaming` asks that it was still streaming."""
    box = newest_and_composer_visible(page)
    if streaming:
        assert box["status"] == "streaming", box
    # The newest message's end is on screen, inside the pane (above the composer), and the composer is whole.
    assert box["paneTop"] - 1 <= box["newestBottom"] <= box["paneBottom"] + 1, box
    assert box["newestBottom"] <= box["composerTop"] + 1, box
    assert 0 <= box["composerTop"] and box["composerBottom"] <= box["height"] + 1, box


def horizontal_overflow(page: Any) -> list[str]:
    """Elements wider than their box at this width: the page, the body, the message pane."""
    return page.evaluate(
        """() => {
          const wide = [];
          for (const [name, node] of [['html', document.documentElement], ['body', document.body],
                                      ['pane', document.getElementById('pane')]]) {
            if (node && node.scrollWidth > node.clientWidth) wide.push(name + ' ' + node.scrollWidth + '>' + node.clientWidth);
          }
          for (const node of document.querySelectorAll('body *')) {
            const r = node.getBoundingClientRect();
            if (r.width && r.right > document.documentElement.clientWidth + 1 && getComputedStyle(node).position !== 'fixed'
                && !node.closest('.visually-hidden, pre, .pane')) wide.push(node.tagName + '#' + node.id + '.' + node.className + ' right=' + r.right);
          }
          return wide;
        }"""
    )


def copied(page: Any) -> str | None:
    return page.evaluate("() => window.__copied === undefined ? null : window.__copied")
