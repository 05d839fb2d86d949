"""Two members in one room, in two browser contexts: both watch the answer stream in and end with the same text,
the citation opens the right file at the right page, and hostile text stays inert for everyone."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import log_in
from tests.support import servers

pytestmark = [pytest.mark.browser, pytest.mark.live]

SEED = Path(__file__).with_name("seed_room.py")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[servers.LiveServer, dict[str, Any]]]:
    # The offline model paces its words so that the stream is visibly a stream in both browsers.
    server = servers.start_server(
        tmp_path_factory.mktemp("browser"), extra_env={"OFFLINE_MODEL_WORDS_PER_SECOND": "15"}
    )
    seeded = json.loads(server.manage("shell", "-c", SEED.read_text()).strip().splitlines()[-1])
    yield server, seeded
    server.stop()


def in_the_room(browser: Any, server: servers.LiveServer) -> tuple[Any, Any]:
    """Alice and Bob, each in their own browser context, on the room page with the socket connected."""
    pages = tuple(log_in(browser, server.url, name, f"{name}-pw-1", "/rooms/lab/") for name in ("alice", "bob"))
    for page in pages:
        page.wait_for_selector("#connection:has-text('Connected')")
    return pages  # type: ignore[return-value]


def test_two_members_watch_the_same_answer_stream_and_open_the_cited_page(browser, site, artifacts):
    server, seeded = site
    alice, bob = in_the_room(browser, server)
    bob.wait_for_function("() => document.getElementById('presence').textContent.includes('alice')")

    alice.fill("#composer-input", "How do sea otters open shellfish?")
    alice.keyboard.press("Enter")

    # Bob sees the question and then the answer growing in place, before it is complete.
    bob.wait_for_selector("li.message.user:has-text('How do sea otters open shellfish?')")
    streaming = bob.wait_for_selector("li.message.assistant.status-streaming")
    bob.wait_for_function(
        "() => { const t = document.querySelector('li.message.assistant.status-streaming .tail');"
        " return t && t.textContent.split(' ').length > 3; }"
    )
    partial = streaming.inner_text()
    for page in (alice, bob):
        page.wait_for_selector("li.message.assistant.status-complete", timeout=30_000)
    alice_text = alice.inner_text("li.message.assistant .body")
    bob_text = bob.inner_text("li.message.assistant .body")
    assert alice_text == bob_text
    assert "rocks" in bob_text and len(bob_text) > len(partial) > 0
    assert alice.input_value("#composer-input") == ""  # sent, so the composer cleared
    bob.screenshot(path=str(artifacts / "room-two-members.png"), full_page=True)

    # The citation opens the PDF at page 2, where the otters are.
    citation = bob.locator("li.message.assistant a.citation").first
    assert citation.get_attribute("data-file") == seeded["guide"]
    assert citation.get_attribute("data-page") == "2"
    with bob.context.expect_page() as opened:
        citation.click()
    viewer = opened.value
    viewer.wait_for_load_state()
    assert f"/rooms/lab/files/{seeded['guide']}/" in viewer.url and "page=2" in viewer.url
    cited = viewer.locator("section.page.cited")
    assert cited.get_attribute("id") == "page-2"
    assert "Sea otters use rocks" in cited.inner_text()
    viewer.screenshot(path=str(artifacts / "file-viewer-page-2.png"))
    alice.context.close()
    bob.context.close()


def test_script_in_a_message_a_file_and_the_model_output_stays_inert(browser, site, artifacts):
    server, _seeded = site
    alice, bob = in_the_room(browser, server)
    hostile_question = (
        "<img src=x onerror=\"window.__pwned='message'\"> How should I handle shellfish shells?"
        " <script>window.__pwned='message-script'</script>"
    )
    answered = alice.locator("li.message.assistant.status-complete").count()
    alice.fill("#composer-input", hostile_question)
    alice.keyboard.press("Enter")
    for page in (alice, bob):
        page.wait_for_function(
            # A function, not an expression: the page's Content-Security-Policy forbids eval, which expressions need.
            f"() => document.querySelectorAll('li.message.assistant.status-complete').length > {answered}",
            timeout=30_000,
        )
    for page in (alice, bob):
        last_answer = page.locator("li.message.assistant").last
        answer_text = last_answer.inner_text()
        # The model quoted the hostile file: its markup shows as text and none of it ran.
        assert "<script>" in answer_text or "onerror" in answer_text
        assert page.evaluate("window.__pwned") is None
        assert page.locator("li.message script, li.message img, li.message [onerror]").count() == 0
        hrefs = page.eval_on_selector_all("li.message a", "links => links.map(a => a.getAttribute('href'))")
        assert not any(href and href.strip().lower().startswith("javascript:") for href in hrefs)
        question = page.locator("li.message.user").last
        assert "<script>" in question.inner_text()  # the member's text is shown, not run
    # After a reload (server-rendered history) it is still inert.
    bob.reload()
    bob.wait_for_selector("li.message.assistant.status-complete")
    assert bob.evaluate("window.__pwned") is None
    assert bob.locator("li.message script, li.message img").count() == 0
    bob.screenshot(path=str(artifacts / "room-hostile-text.png"), full_page=True)
    alice.context.close()
    bob.context.close()


def test_a_stranger_gets_a_404_for_the_room_and_its_files(browser, site):
    server, seeded = site
    carol = log_in(browser, server.url, "carol", "carol-pw-1", "/")
    assert "Lab" not in carol.inner_text("main")
    response = carol.goto("/rooms/lab/")
    assert response is not None and response.status == 404
    response = carol.goto(f"/rooms/lab/files/{seeded['guide']}/")
    assert response is not None and response.status == 404
    carol.context.close()


def test_room_js_resumes_once_and_applies_every_delta_once_across_a_dropped_socket(browser, site):
    """Bob's network drops mid-answer (his socket is closed under the page); room.js reconnects, resumes the answer
    once from what it holds, and before the end arrives the text it assembled is exactly the saved text: every
    delta applied once, none lost. The end is held back by the route until that is checked."""
    server, _seeded = site
    alice, bob = in_the_room(browser, server)
    connections: list[tuple[Any, Any]] = []
    sent: list[tuple[int, dict[str, Any]]] = []  # (connection, frame) from the page
    received: list[tuple[int, dict[str, Any]]] = []  # (connection, event) to the page
    held: list[tuple[Any, str]] = []

    def route(page_side: Any) -> None:
        server_side = page_side.connect_to_server()
        index = len(connections)
        connections.append((page_side, server_side))

        def to_page(message: str) -> None:
            event = json.loads(message)
            received.append((index, event))
            if event["type"] == "assistant.done":
                held.append((page_side, message))  # forwarded once the assembled text is checked
                return
            page_side.send(message)

        def to_server(message: str) -> None:
            sent.append((index, json.loads(message)))
            server_side.send(message)

        server_side.on_message(to_page)
        page_side.on_message(to_server)

    bob.route_web_socket(re.compile(r".*/ws/rooms/lab/"), route)
    bob.reload()
    bob.wait_for_selector("#connection:has-text('Connected')")
    alice.fill("#composer-input", "How do sea otters open shellfish with rocks?")
    alice.keyboard.press("Enter")
    bob.wait_for_function(
        "() => Number((document.querySelector('li.message.assistant.status-streaming') || {dataset: {}}).dataset.seq) >= 3"
    )
    page_side, server_side = connections[-1]
    page_side.close(code=4000)  # the network drops: both sides see the socket close
    server_side.close(code=4000)
    alice.wait_for_selector("li.message.assistant.status-complete", timeout=30_000)
    deadline = time.monotonic() + 30
    while not held and time.monotonic() < deadline:
        bob.wait_for_timeout(100)
    assert held, f"bob's page never got the end; it reconnected {len(connections) - 1} time(s)"
    final = json.loads(held[-1][1])["message"]
    assembled = bob.eval_on_selector(
        f"li.message[data-id='{final['id']}']", "li => [Number(li.dataset.seq), Number(li.dataset.chars)]"
    )
    assert assembled == [final["seq"], len(final["content"])], (
        f"assembled (seq, characters) {assembled}, saved {final['seq']}, {len(final['content'])}"
    )
    for page_side, message in held:
        page_side.send(message)
    bob.wait_for_selector("li.message.assistant.status-complete")
    assert bob.inner_text("li.message.assistant .body") == alice.inner_text("li.message.assistant .body")
    assert len(connections) >= 2, "room.js did not reconnect"
    for index in range(len(connections)):
        resumes = [f for i, f in sent if i == index and f["type"] == "turn.resume" and f["message_id"] == final["id"]]
        assert len(resumes) <= 1, f"connection {index} asked to resume the answer {len(resumes)} times"
    resumed = [f for i, f in sent if i >= 1 and f["type"] == "turn.resume" and f["message_id"] == final["id"]]
    assert resumed and resumed[0]["chars"] > 0, f"the reconnected page did not resume from what it held: {resumed}"
    alice.context.close()
    bob.context.close()
