"""axe-core (the npm package, injected into each page) finds no serious or critical violation on the login page,
the room list, a room with an answer (desktop and phone), search, the file viewer and the admin's room pages, in
light and dark mode."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import log_in
from tests.browser.ux_support import PASSWORDS, VIEWPORTS, ask, start_site, wait_answer
from tests.support import servers

pytestmark = [pytest.mark.browser, pytest.mark.live]

THEMES = pytest.mark.parametrize("scheme", ["light", "dark"])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[tuple[servers.LiveServer, dict[str, Any]]]:
    for server, seeded in start_site(tmp_path_factory, "browser-a11y"):
        # One answer with citations and sources in "Questions", so the room page has every kind of message.
        page = log_in_as(browser, server, "alice", f"/rooms/lab/?c={seeded['questions']}")
        page.wait_for_selector("#connection:has-text('Connected')")
        wait_answer(page, ask(page, "How do sea otters open shellfish while floating?"))
        page.context.close()
        yield server, seeded


def log_in_as(browser: Any, server: servers.LiveServer, name: str, path: str, **options: Any) -> Any:
    # axe is injected as a script tag, which the site's Content-Security-Policy would (rightly) refuse.
    return log_in(browser, server.url, name, PASSWORDS[name], path, bypass_csp=True, **options)


def serious_violations(page: Any, axe_script: Any) -> list[dict[str, Any]]:
    page.add_script_tag(path=str(axe_script))
    violations = page.evaluate(
        """async () => {
          const result = await axe.run(document, { resultTypes: ['violations'] });
          return result.violations.map((v) => ({
            id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' ') + ' :: ' + n.failureSummary),
          }));
        }"""
    )
    return [v for v in violations if v["impact"] in ("serious", "critical")]


def check(page: Any, axe_script: Any, artifacts: Any, name: str) -> None:
    page.wait_for_load_state("load")
    found = serious_violations(page, axe_script)
    page.screenshot(path=str(artifacts / f"a11y-{name}.png"))
    assert found == [], f"{name}: " + json.dumps(found, indent=1)


@THEMES
def test_login_page(browser, site, axe_script, artifacts, scheme):
    server, _seeded = site
    context = browser.new_context(base_url=server.url, bypass_csp=True, color_scheme=scheme)
    page = context.new_page()
    page.goto("/login/")
    assert page.evaluate("() => document.documentElement.dataset.theme") == scheme
    check(page, axe_script, artifacts, f"login-{scheme}")
    context.close()


@THEMES
@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_room_list_room_search_and_file_viewer(browser, site, axe_script, artifacts, scheme, viewport):
    server, seeded = site
    page = log_in_as(browser, server, "alice", "/", color_scheme=scheme, viewport=VIEWPORTS[viewport])
    check(page, axe_script, artifacts, f"rooms-{scheme}-{viewport}")
    for conversation in ("questions", "history"):
        page.goto(f"/rooms/lab/?c={seeded[conversation]}")
        page.wait_for_selector("#connection:has-text('Connected')")
        if conversation == "questions":
            page.locator("li.message.assistant a.citation").first.focus()  # its popover open too
            page.wait_for_selector("#citation-popover", state="visible")
        check(page, axe_script, artifacts, f"room-{conversation}-{scheme}-{viewport}")
    # Open states too: the edit form on alice's question, the feedback comment form, the phone's drawers.
    page.goto(f"/rooms/lab/?c={seeded['questions']}")
    page.wait_for_selector("#connection:has-text('Connected')")
    page.locator("li.message.user [data-action=edit]").last.click()
    answer = page.locator("li.message.assistant").last
    answer.locator("[data-action^=feedback][aria-pressed=false]").first.click()  # a vote not yet cast opens the form
    page.wait_for_selector(".feedback-form input")
    if viewport == "phone":
        page.click("#toggle-settings")
        page.click("#toggle-conversations")
    check(page, axe_script, artifacts, f"room-open-forms-{scheme}-{viewport}")
    page.goto("/rooms/lab/search/?q=otters")
    check(page, axe_script, artifacts, f"search-{scheme}-{viewport}")
    page.goto(f"/rooms/lab/files/{seeded['guide']}/?page=2#page-2")
    check(page, axe_script, artifacts, f"file-viewer-{scheme}-{viewport}")
    page.context.close()


@THEMES
def test_admin_room_pages(browser, site, axe_script, artifacts, scheme):
    server, seeded = site
    page = log_in_as(browser, server, "staff", "/admin/", color_scheme=scheme)
    page.goto(f"/admin/assistant_chat/room/{seeded['room']}/change/")
    check(page, axe_script, artifacts, f"admin-room-{scheme}")
    page.goto("/admin/assistant_chat/room/")
    check(page, axe_script, artifacts, f"admin-room-list-{scheme}")
    page.goto(f"/admin/assistant_chat/conversation/{seeded['questions']}/change/")
    check(page, axe_script, artifacts, f"admin-conversation-{scheme}")
    page.context.close()
