"""The room as a chat application (issue 16), at 1280x800 and 390x844: it opens at the newest message with the
composer docked, follows a streaming answer (or offers "jump to latest"), loads older messages on scroll and fits a
phone; message actions (copy, code copy, regenerate with versions, edit, feedback) are shared live between members;
citations show their source; typing, day separators, the live room header, "stopped by", dark mode, the composer's
limit and a keyboard-only session. Screenshots go to test-artifacts/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.ux_support import (
    ask,
    assert_newest_and_composer_in_view,
    copied,
    horizontal_overflow,
    last_answer_id,
    member,
    start_site,
    wait_answer,
    wait_streaming,
)
from tests.support import servers

pytestmark = [pytest.mark.browser, pytest.mark.live]

BOTH = pytest.mark.parametrize("viewport", ["desktop", "phone"])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[servers.LiveServer, dict[str, Any]]]:
    yield from start_site(tmp_path_factory, "browser-ux")


def open_drawer(page: Any) -> None:
    """On a phone the conversation list is a drawer behind "Conversations": open it."""
    if page.locator("#toggle-conversations").is_visible() and not page.locator("#conversations").is_visible():
        page.click("#toggle-conversations")


def new_conversation(page: Any) -> int:
    """A new conversation started from the page (as its member); the page is then on it, connected."""
    open_drawer(page)
    page.click("#new-conversation")
    page.wait_for_url(re.compile(r".*\?c=\d+$"))
    page.wait_for_selector("#connection:has-text('Connected')")
    return int(page.url.rsplit("=", 1)[1])


def open_conversation(page: Any, conversation: int) -> None:
    page.goto(f"/rooms/lab/?c={conversation}")
    page.wait_for_selector("#connection:has-text('Connected')")


@BOTH
def test_a_long_conversation_opens_at_its_newest_message_and_loads_older_ones_on_scroll(
    browser, site, artifacts, viewport
):
    server, seeded = site
    bob = member(browser, server, "bob", f"/rooms/lab/?c={seeded['history']}", viewport)
    # Only the newest messages are in the page; the newest one and the composer are on screen.
    shown = bob.locator("#messages li.message").count()
    assert 0 < shown < 130
    # (Other tests may have added to this conversation: its seeded end is on show, whatever came after.)
    assert bob.locator("#messages li.message:has-text('History message 129')").count() == 1
    assert_newest_and_composer_in_view(bob)
    assert horizontal_overflow(bob) == []
    assert bob.locator("#jump-latest").is_hidden()
    # Days are separated; every time has its full date on hover and in datetime.
    days = bob.locator("#messages li.day-separator")
    assert days.count() >= 1
    assert days.last.inner_text() == "Today"
    first_time = bob.locator("#messages li.message time").first
    assert re.search(r"\d{4}", first_time.get_attribute("title") or ""), first_time.get_attribute("title")
    assert first_time.get_attribute("datetime")
    bob.screenshot(path=str(artifacts / f"ux-open-newest-{viewport}.png"))

    # Scrolling up loads the earlier messages above, keeping the reader's place; a "jump to latest" appears.
    for _ in range(10):
        bob.evaluate("() => { document.getElementById('pane').scrollTop = 0; }")
        bob.wait_for_timeout(300)
        if bob.locator("#messages li.message").first.inner_text().find("History message 0:") >= 0:
            break
    assert "History message 0:" in bob.locator("#messages li.message").first.inner_text()
    assert bob.locator("#messages li.message").count() >= 130
    assert bob.locator("#messages li.message:has-text('History message 64:')").count() == 1
    assert bob.locator("#older").is_hidden()
    assert bob.locator("#messages li.day-separator").count() == 3
    assert bob.locator("#jump-latest").is_visible()
    bob.screenshot(path=str(artifacts / f"ux-older-loaded-{viewport}.png"))
    bob.click("#jump-latest")
    bob.wait_for_timeout(200)
    assert_newest_and_composer_in_view(bob)
    assert bob.locator("#jump-latest").is_hidden()
    bob.context.close()


@BOTH
def test_the_pane_follows_a_stream_unless_the_reader_scrolled_up(browser, site, artifacts, viewport):
    server, seeded = site
    alice = member(browser, server, "alice", f"/rooms/lab/?c={seeded['history']}", viewport)
    bob = member(browser, server, "bob", f"/rooms/lab/?c={seeded['history']}", viewport)

    # Typing shows on the other member's page, then goes once the message arrives.
    alice.fill("#composer-input", "Where do sea otters keep their rocks, and how do they groom their dense fur")
    alice.type("#composer-input", "?")
    bob.wait_for_selector("#typing:has-text('alice is typing')")
    before = last_answer_id(bob)
    alice.press("#composer-input", "Enter")
    wait_streaming(bob, before)
    assert bob.inner_text("#typing") == ""
    # The new question was announced to bob's screen reader.
    assert "alice: Where do sea otters keep their rocks" in bob.inner_text("#announcer")

    # Mid-stream, the newest (streaming) message and the composer are on screen for both.
    for page in (bob, alice):
        assert_newest_and_composer_in_view(page, streaming=True)
    bob.screenshot(path=str(artifacts / f"ux-streaming-{viewport}.png"))

    # Bob scrolls up to read: the pane stays where he is and offers to jump back. A delta handled before the scroll
    # event is dispatched (it comes with the next frame) must not pull him back down: one is handed to the page in
    # the same task as the scroll (seq 1 again, so it adds no text; it still goes through the pane's following).
    bob.evaluate(
        """(conversation) => {
          document.getElementById('pane').scrollTop = 200;
          const answer = [...document.querySelectorAll('li.message.assistant')].pop();
          const frame = {type: 'assistant.delta', conversation_id: conversation, message_id: Number(answer.dataset.id),
                         seq: 1, text: ''};
          window.__sockets[window.__sockets.length - 1].dispatchEvent(
            new MessageEvent('message', {data: JSON.stringify(frame)}));
        }""",
        seeded["history"],
    )
    bob.wait_for_selector("#jump-latest", state="visible")
    top = bob.evaluate("() => document.getElementById('pane').scrollTop")
    bob.wait_for_timeout(600)
    assert bob.evaluate("() => document.getElementById('pane').scrollTop") >= top - 5
    # A message that arrives while bob reads above is marked "New messages" in the pane.
    alice.fill("#composer-input", "And do they share their rocks?")
    alice.press("#composer-input", "Enter")
    bob.wait_for_selector("#messages li.unread-marker:has-text('New messages')", state="attached")
    assert bob.evaluate(
        "() => document.querySelector('li.unread-marker').nextElementSibling.textContent.includes('share their rocks')"
    )
    bob.screenshot(path=str(artifacts / f"ux-jump-to-latest-{viewport}.png"))
    wait_answer(alice, before)
    bob.click("#jump-latest")
    wait_answer(bob, before)
    bob.wait_for_timeout(200)
    assert_newest_and_composer_in_view(bob)
    # The end of the answer is announced.
    bob.wait_for_function("() => document.getElementById('announcer').textContent.includes('Answer complete.')")
    assert horizontal_overflow(bob) == []
    alice.context.close()
    bob.context.close()


@BOTH
def test_two_members_see_the_same_regenerated_versions_and_feedback_counts(browser, site, artifacts, viewport):
    server, _seeded = site
    alice = member(browser, server, "alice", "/rooms/lab/", viewport)
    conversation = new_conversation(alice)
    bob = member(browser, server, "bob", f"/rooms/lab/?c={conversation}", viewport)
    before = ask(alice, "Where do sea otters keep their rocks?")
    first = wait_answer(alice, before)
    first_id = int(first.get_attribute("data-id"))
    wait_answer(bob, before)
    first_text = alice.inner_text(f"#message-{first_id} .body")

    # Copy the answer: the clipboard gets the message's text.
    alice.click(f"#message-{first_id} [data-action=copy]")
    alice.wait_for_function("() => window.__copied !== undefined")
    assert "otters" in (copied(alice) or "").lower()

    # Regenerate: a second version streams into the same place for both; both can browse "1/2" and "2/2".
    alice.click(f"#message-{first_id} [data-action=regenerate]")
    for page in (alice, bob):
        second = wait_answer(page, first_id)
        assert page.locator("li.message.assistant").count() == 1
        assert second.locator(".version-label").inner_text() == "2/2"
    second_id = last_answer_id(alice)
    assert last_answer_id(bob) == second_id
    bob.click(f"#message-{second_id} [data-action=version-previous]")
    bob.wait_for_selector(f"#message-{first_id} .version-label:has-text('1/2')")
    assert bob.inner_text(f"#message-{first_id} .body") == first_text
    bob.screenshot(path=str(artifacts / f"ux-versions-{viewport}.png"))
    bob.click(f"#message-{first_id} [data-action=version-next]")
    bob.wait_for_selector(f"#message-{second_id} .version-label:has-text('2/2')")

    # Feedback: alice says good (with a comment), bob says bad; both see the same counts, live.
    alice.click(f"#message-{second_id} [data-action=feedback-up]")
    alice.wait_for_selector(f"#message-{second_id} .feedback-form input:focus")
    alice.fill(f"#message-{second_id} .feedback-form input", "Clear and cited.")
    alice.press(f"#message-{second_id} .feedback-form input", "Enter")
    bob.click(f"#message-{second_id} [data-action=feedback-down]")
    bob.press(f"#message-{second_id} .feedback-form input", "Escape")  # the comment is optional; Escape closes
    assert bob.locator(f"#message-{second_id} .feedback-form").count() == 0
    for page in (alice, bob):
        page.wait_for_selector(f"#message-{second_id} [data-action=feedback-up]:has-text('Good 1')")
        page.wait_for_selector(f"#message-{second_id} [data-action=feedback-down]:has-text('Bad 1')")
    assert alice.get_attribute(f"#message-{second_id} [data-action=feedback-up]", "aria-pressed") == "true"
    assert bob.get_attribute(f"#message-{second_id} [data-action=feedback-down]", "aria-pressed") == "true"
    # The counts and versions survive a reload (they are saved, per member).
    bob.reload()
    bob.wait_for_selector(f"#message-{second_id} [data-action=feedback-down][aria-pressed=true]:has-text('Bad 1')")
    assert bob.inner_text(f"#message-{second_id} .version-label") == "2/2"
    alice.screenshot(path=str(artifacts / f"ux-feedback-{viewport}.png"))
    assert horizontal_overflow(alice) == []
    # Staff review shows both versions and the votes with the comment.
    staff = member(browser, server, "staff", f"/admin/assistant_chat/conversation/{conversation}/change/")
    transcript = staff.inner_text("ol.transcript")
    assert "version 1 of 2" in transcript and "version 2 of 2" in transcript
    assert "Clear and cited." in transcript and "1 good, 1 bad" in transcript
    staff.screenshot(path=str(artifacts / f"ux-review-versions-feedback-{viewport}.png"), full_page=True)
    staff.context.close()
    alice.context.close()
    bob.context.close()


@BOTH
def test_members_edit_and_resend_their_own_questions_only(browser, site, artifacts, viewport):
    server, _seeded = site
    alice = member(browser, server, "alice", "/rooms/lab/", viewport)
    conversation = new_conversation(alice)
    bob = member(browser, server, "bob", f"/rooms/lab/?c={conversation}", viewport)
    before = ask(alice, "Do otters use tools?")
    wait_answer(alice, before)
    wait_answer(bob, before)
    question = alice.locator("li.message.user").last
    question_id = int(question.get_attribute("data-id"))
    assert bob.locator(f"#message-{question_id} [data-action=edit]").count() == 0  # not bob's to edit

    # Escape closes the edit form and gives focus back to Edit.
    alice.click(f"#message-{question_id} [data-action=edit]")
    alice.press(f"#message-{question_id} .edit-form textarea", "Escape")
    assert alice.locator(".edit-form").count() == 0
    assert alice.evaluate("() => document.activeElement.dataset.action") == "edit"

    answer_before = last_answer_id(alice)
    alice.click(f"#message-{question_id} [data-action=edit]")
    alice.fill(f"#message-{question_id} .edit-form textarea", "Which tools do sea otters use for shellfish?")
    alice.click(f"#message-{question_id} .edit-form button[type=submit]")
    for page in (alice, bob):
        page.wait_for_selector("li.message.user:has-text('Which tools do sea otters use for shellfish?')")
        wait_answer(page, answer_before)
        edited = page.locator("li.message.user").last
        assert "edited" in edited.locator(".details").inner_text()
        assert page.locator("li.message.user").count() == 1  # the new version takes the question's place
    assert alice.input_value("#composer-input") == ""
    alice.screenshot(path=str(artifacts / f"ux-edited-{viewport}.png"))
    alice.context.close()
    bob.context.close()


@BOTH
def test_code_blocks_are_highlighted_and_copied(browser, site, artifacts, viewport):
    server, seeded = site
    bob = member(browser, server, "bob", f"/rooms/lab/?c={seeded['history']}", viewport)
    block = bob.locator("#messages .code-block").last
    block.scroll_into_view_if_needed()
    assert block.locator("pre.highlight span.k").count() >= 1  # highlighted on the server (Pygments)
    block.locator("button.copy-code").click()
    bob.wait_for_function("() => window.__copied !== undefined")
    assert copied(bob).strip() == "def crack(shell):\n    return shell.split('|')"
    bob.screenshot(path=str(artifacts / f"ux-code-block-{viewport}.png"))
    assert horizontal_overflow(bob) == []
    bob.context.close()


@BOTH
def test_a_citation_shows_its_file_page_and_passage_and_each_answer_lists_its_sources(
    browser, site, artifacts, viewport
):
    server, seeded = site
    alice = member(browser, server, "alice", "/rooms/lab/", viewport)
    new_conversation(alice)
    before = ask(alice, "How do sea otters open shellfish while floating?")
    answer = wait_answer(alice, before)
    sources = answer.locator("ol.sources li")
    assert sources.count() >= 1
    names = [sources.nth(i).locator(".source-link").inner_text() for i in range(sources.count())]
    assert set(names) <= {"guide.pdf", "otter-notes.md"} and names
    citation = answer.locator("a.citation").first
    number = citation.get_attribute("data-number") or re.search(r"\d+", citation.inner_text()).group(0)
    source = answer.locator(f"ol.sources li[data-number='{number}']")
    expected_name = source.locator(".source-link").inner_text()

    citation.hover()
    popover = alice.locator("#citation-popover")
    popover.wait_for(state="visible")
    assert expected_name in popover.inner_text()
    if citation.get_attribute("data-page"):
        assert f"Page {citation.get_attribute('data-page')}" in popover.inner_text()
    assert popover.locator("blockquote").count() == 1 and "otter" in popover.inner_text().lower()
    assert citation.get_attribute("aria-describedby") == "citation-popover"
    alice.screenshot(path=str(artifacts / f"ux-citation-popover-{viewport}.png"))
    box = popover.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= alice.viewport_size["width"]
    alice.mouse.move(0, 0)
    popover.wait_for(state="hidden")
    # Keyboard focus shows it too; Escape hides it.
    citation.focus()
    popover.wait_for(state="visible")
    alice.keyboard.press("Escape")
    popover.wait_for(state="hidden")
    alice.context.close()


@BOTH
def test_rename_escape_archive_and_automatic_titles(browser, site, artifacts, viewport):
    server, seeded = site
    alice = member(browser, server, "alice", "/rooms/lab/", viewport)
    conversation = new_conversation(alice)
    bob = member(browser, server, "bob", f"/rooms/lab/?c={conversation}", viewport)
    before = ask(alice, "How do otters crack shellfish with rocks?")
    wait_answer(alice, before)
    # The title follows the first question (the offline room has no title model).
    for page in (alice, bob):
        page.wait_for_function("() => document.getElementById('conversation-title').textContent !== 'New conversation'")
        assert "otters" in page.inner_text("#conversation-title").lower()

    # Rename: Escape closes the form and focus goes back to Rename; Save renames for everyone.
    alice.click("#rename-button")
    assert alice.evaluate("() => document.activeElement.id") == "rename-input"
    alice.keyboard.press("Escape")
    assert alice.locator("#rename-form").is_hidden()
    assert alice.evaluate("() => document.activeElement.id") == "rename-button"
    alice.click("#rename-button")
    alice.fill("#rename-input", "Otter tools")
    alice.press("#rename-input", "Enter")
    bob.wait_for_selector("#conversation-title:has-text('Otter tools')")
    bob.wait_for_selector(
        f"#conversation-list li[data-id='{conversation}'] a:has-text('Otter tools')", state="attached"
    )

    # Only its creator may archive a conversation; archived ones leave the list, under "Show archived".
    assert bob.locator("#archive-button").count() == 0
    alice.click("#archive-button")
    alice.wait_for_selector("#archive-button:has-text('Unarchive')")
    alice.goto("/rooms/lab/")
    assert alice.locator(f"#conversation-list li[data-id='{conversation}']").count() == 0
    open_drawer(alice)
    alice.click("#archived-filter")
    open_drawer(alice)
    alice.wait_for_selector(f"#conversation-list li[data-id='{conversation}']")
    alice.screenshot(path=str(artifacts / f"ux-archived-filter-{viewport}.png"))
    alice.click(f"#conversation-list li[data-id='{conversation}'] a")
    alice.wait_for_selector("#connection:has-text('Connected')")
    alice.click("#archive-button")
    alice.wait_for_selector("#archive-button:has-text('Archive')")
    alice.goto("/rooms/lab/")
    assert alice.locator(f"#conversation-list li[data-id='{conversation}']").count() == 1
    if viewport == "phone":  # the conversation drawer closes with Escape, focus back on its button
        open_drawer(alice)
        alice.keyboard.press("Escape")
        assert alice.locator("#conversations").is_hidden()
        assert alice.evaluate("() => document.activeElement.id") == "toggle-conversations"
        open_drawer(alice)  # and with its Close button
        alice.click("#close-conversations")
        assert alice.locator("#conversations").is_hidden()
    # A conversation with news elsewhere is marked unread in the list.
    bob.goto(f"/rooms/lab/?c={seeded['history']}")
    bob.wait_for_selector("#connection:has-text('Connected')")
    open_conversation(alice, conversation)
    ask(alice, "Anything else about otters?")
    marked = bob.locator(f"#conversation-list li[data-id='{conversation}'].unread")
    marked.wait_for(state="attached")
    open_drawer(bob)
    assert marked.locator(".unread-label").inner_text() == "new"
    bob.screenshot(path=str(artifacts / f"ux-unread-conversation-{viewport}.png"))
    alice.context.close()
    bob.context.close()


@BOTH
def test_the_header_follows_room_settings_and_only_the_asker_stops_an_answer(browser, site, artifacts, viewport):
    server, seeded = site
    alice = member(browser, server, "alice", "/rooms/lab/", viewport)
    conversation = new_conversation(alice)
    bob = member(browser, server, "bob", f"/rooms/lab/?c={conversation}", viewport)

    staff = member(browser, server, "staff", f"/admin/assistant_chat/room/{seeded['room']}/change/")
    temperature = "0.3" if viewport == "desktop" else "0.4"
    staff.fill("#id_temperature", temperature)
    staff.click("input[name=_save]")
    staff.wait_for_selector(".messagelist .success")
    for page in (alice, bob):
        page.wait_for_selector(f"#room-temperature:has-text('{temperature}')", state="attached")
    if viewport == "phone":  # folded away behind "Room details" on a phone
        assert alice.locator("#room-temperature").is_hidden()
        alice.click("#toggle-settings")
        assert alice.locator("#room-temperature").is_visible()
        assert alice.get_attribute("#toggle-settings", "aria-expanded") == "true"
    alice.screenshot(path=str(artifacts / f"ux-room-settings-live-{viewport}.png"))

    before = ask(alice, "Tell me everything about how sea otters crack shellfish with rocks.")
    wait_streaming(bob, before)
    assert bob.locator("#stop").is_disabled()  # bob did not ask: his Stop is off
    alice.click("#stop")
    for page in (alice, bob):
        answer = wait_answer(page, before)
        assert answer.get_attribute("data-status") == "cancelled"
        assert "stopped by alice" in answer.locator(".details").inner_text()
    bob.screenshot(path=str(artifacts / f"ux-stopped-by-{viewport}.png"))
    alice.context.close()
    bob.context.close()
    staff.context.close()


@BOTH
def test_dark_mode_follows_the_system_and_the_toggle_is_kept(browser, site, artifacts, viewport):
    server, seeded = site
    dark = member(browser, server, "alice", f"/rooms/lab/?c={seeded['history']}", viewport, color_scheme="dark")
    assert dark.evaluate("() => document.documentElement.dataset.theme") == "dark"
    background = dark.evaluate("() => getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(13, 17, 23)"
    assert dark.get_attribute("#theme-toggle", "aria-pressed") == "true"
    dark.locator("#messages .code-block").last.scroll_into_view_if_needed()
    dark.screenshot(path=str(artifacts / f"ux-dark-room-{viewport}.png"))
    assert horizontal_overflow(dark) == []
    dark.click("#theme-toggle")
    assert dark.evaluate("() => document.documentElement.dataset.theme") == "light"
    dark.reload()
    assert dark.evaluate("() => document.documentElement.dataset.theme") == "light"  # the choice is kept
    assert dark.evaluate("() => getComputedStyle(document.body).backgroundColor") == "rgb(246, 248, 250)"
    dark.context.close()


@BOTH
def test_the_composer_counts_near_the_limit_and_refuses_over_it_keeping_the_text(browser, site, artifacts, viewport):
    server, _seeded = site
    alice = member(browser, server, "alice", "/rooms/lab/", viewport)
    new_conversation(alice)
    counter = alice.locator("#composer-counter")
    alice.fill("#composer-input", "x" * 100)
    assert counter.is_hidden()
    alice.fill("#composer-input", "x" * 7500)
    assert counter.inner_text() == "7,500 / 8,000"
    too_long = "y" * 8100
    alice.fill("#composer-input", too_long)
    assert "100 too many" in counter.inner_text()
    assert alice.get_attribute("#composer-input", "aria-invalid") == "true"
    alice.press("#composer-input", "Enter")
    alert = alice.locator("#alert")
    alert.wait_for(state="visible")
    assert "8,100 characters" in alert.inner_text() and "8,000" in alert.inner_text()
    assert alice.input_value("#composer-input") == too_long  # nothing cut, nothing lost
    assert alice.locator("li.message").count() == 0  # and nothing sent
    alice.screenshot(path=str(artifacts / f"ux-composer-limit-{viewport}.png"))
    assert horizontal_overflow(alice) == []
    alice.context.close()


def tab_to(page: Any, predicate: str, limit: int = 80, back: bool = False) -> None:
    """Press Tab (or Shift+Tab) until the focused element satisfies `predicate` (a function of the element)."""
    for _ in range(limit):
        if page.evaluate(f"() => {{ const el = document.activeElement; return Boolean(el && ({predicate})(el)); }}"):
            return
        page.keyboard.press("Shift+Tab" if back else "Tab")
    raise AssertionError(f"never reached {predicate} by keyboard")


@BOTH
def test_keyboard_only_log_in_open_ask_stop_copy_regenerate(browser, site, artifacts, viewport):
    from tests.browser.ux_support import RECORD_COPIES, VIEWPORTS

    server, _seeded = site
    context = browser.new_context(base_url=server.url, viewport=VIEWPORTS[viewport])
    context.add_init_script(RECORD_COPIES)
    page = context.new_page()
    page.goto("/login/?next=/")
    # The username field has focus on arrival (autofocus), else Tab reaches it.
    page.wait_for_load_state("load")
    tab_to(page, "(el) => el.id === 'id_username'")
    page.keyboard.type("alice")
    page.keyboard.press("Tab")
    page.keyboard.type("alice-pw-1")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server.url}/")
    tab_to(page, "(el) => el.tagName === 'A' && el.textContent.includes('Lab')")
    page.keyboard.press("Enter")
    page.wait_for_selector("#connection:has-text('Connected')")
    tab_to(page, "(el) => el.id === 'new-conversation' || el.id === 'toggle-conversations'")
    if page.evaluate("() => document.activeElement.id") == "toggle-conversations":
        page.keyboard.press("Enter")  # the phone layout: the conversation list is a drawer
        tab_to(page, "(el) => el.id === 'new-conversation'")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*\?c=\d+$"))
    page.wait_for_selector("#connection:has-text('Connected')")
    tab_to(page, "(el) => el.id === 'composer-input'")
    page.keyboard.type("Tell me everything about how sea otters crack shellfish with rocks.")
    page.keyboard.press("Enter")
    wait_streaming(page, 0)
    tab_to(page, "(el) => el.id === 'stop'")
    page.keyboard.press("Enter")
    answer = wait_answer(page, 0)
    assert answer.get_attribute("data-status") == "cancelled"
    page.wait_for_function("() => document.activeElement && document.activeElement.id === 'composer-input'")
    tab_to(page, "(el) => el.dataset.action === 'copy' && el.closest('li.message.assistant')", back=True)
    page.keyboard.press("Enter")
    page.wait_for_function("() => window.__copied !== undefined")
    assert copied(page)
    tab_to(page, "(el) => el.dataset.action === 'regenerate'")
    focus_ring = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert focus_ring != "none"  # focus is visible
    page.keyboard.press("Enter")
    answer_id = int(answer.get_attribute("data-id"))
    regenerated = wait_answer(page, answer_id)
    assert regenerated.locator(".version-label").inner_text() == "2/2"
    page.screenshot(path=str(artifacts / f"ux-keyboard-only-{viewport}.png"))
    context.close()
