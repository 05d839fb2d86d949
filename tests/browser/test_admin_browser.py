"""Staff create a room with a metadata filter in the admin; a member opens it, asks, and the answer cites only the
files the filter lets through."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import log_in
from tests.support import servers

pytestmark = [pytest.mark.browser, pytest.mark.live]

SEED = Path(__file__).with_name("seed_admin.py")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[servers.LiveServer, dict[str, Any]]]:
    server = servers.start_server(tmp_path_factory.mktemp("browser-admin"))
    files = json.loads(server.manage("shell", "-c", SEED.read_text()).strip().splitlines()[-1])
    yield server, files
    server.stop()


def test_staff_create_a_filtered_room_and_the_answer_cites_only_matching_files(browser, site, artifacts):
    server, files = site
    staff = log_in(browser, server.url, "staff", "staff-pw-1", "/admin/")
    staff.goto("/admin/assistant_chat/room/add/")
    staff.fill("#id_name", "Lab team")  # the slug follows the name
    staff.select_option("#id_assistant", label="wildlife")

    # A malformed filter is refused on the field, with the problem named.
    staff.fill("#id_metadata_filter", '{"team": {"$regex": "lab"}}')
    staff.select_option("#id_members_from", label="bob")
    staff.click("#id_members_add")
    staff.click("input[name=_save]")
    error = staff.locator(".field-metadata_filter .errorlist").inner_text()
    assert "$regex" in error

    staff.fill("#id_metadata_filter", '{"team": "lab"}')
    if staff.locator("#id_members_to option").count() == 0:  # the widget may not keep the choice after an error
        staff.select_option("#id_members_from", label="bob")
        staff.click("#id_members_add")
    staff.screenshot(path=str(artifacts / "admin-room-form.png"), full_page=True)
    staff.click("input[name=_save]")
    staff.wait_for_selector(".messagelist .success")

    bob = log_in(browser, server.url, "bob", "bob-pw-1", "/")
    bob.click("text=Lab team")
    bob.wait_for_url("**/rooms/lab-team/")
    bob.wait_for_selector("#connection:has-text('Connected')")
    assert '{"team": "lab"}' in bob.inner_text("#room-filter")
    bob.click("#new-conversation")
    bob.wait_for_selector("#composer-input")
    bob.wait_for_selector("#connection:has-text('Connected')")
    bob.fill("#composer-input", "How do sea otters crack shellfish?")
    bob.keyboard.press("Enter")
    bob.wait_for_selector("li.message.assistant.status-complete", timeout=30_000)
    cited = bob.eval_on_selector_all(
        "li.message.assistant a.citation", "links => links.map(a => a.getAttribute('data-file'))"
    )
    assert cited and set(cited) == {files["lab-notes.txt"]}
    assert "anvils" in bob.inner_text("li.message.assistant .body")
    bob.screenshot(path=str(artifacts / "room-filtered-answer.png"), full_page=True)
    staff.context.close()
    bob.context.close()
