"""Issue 16 in review and exports: every version, who stopped an answer and members' feedback are shown, filtered,
exported (with absolute links) and summed in the usage report; the file page's status is live."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from assistant_chat.models import File, Message, MessageFeedback
from assistant_chat.review.usage import usage_report
from tests.admin.conftest import login, staff_with, superuser_client

pytestmark = pytest.mark.django_db(transaction=True)
LIST = "/admin/assistant_chat/conversation/"


@pytest.fixture
def rated(world, history):
    """The otter answer regenerated (version 2, stopped by alice) and voted on by alice and bob."""
    good = history["good"]
    second = Message.objects.create(
        conversation=good.conversation,
        role="assistant",
        reply_to=good.reply_to,
        version_of=good,
        version=2,
        content="Otters crack shells on rocks.",
        status="cancelled",
        stopped_by=world["alice"],
        model="offline",
        prompt_tokens=10,
        completion_tokens=5,
    )
    MessageFeedback.objects.create(message=good, user=world["alice"], value="up")
    MessageFeedback.objects.create(message=good, user=world["bob"], value="down", comment="Cites the wrong page")
    MessageFeedback.objects.create(message=second, user=world["bob"], value="up")
    return {"good": good, "second": second}


def test_the_list_filters_conversations_by_feedback(world, history, rated) -> None:
    _boss, client = superuser_client()
    titles = lambda **p: [c.title for c in client.get(LIST, p).context["cl"].result_list]  # noqa: E731
    assert titles(feedback="negative") == ["Otter questions"]
    assert titles(feedback="commented") == ["Otter questions"]
    assert titles(feedback="none") == ["Bee questions"]
    page = client.get(LIST).content.decode()
    assert "2 up" in page and "1 down" in page


def test_the_transcript_shows_versions_stops_and_votes(world, history, rated) -> None:
    _boss, client = superuser_client()
    response = client.get(f"{LIST}{history['lab_talk'].pk}/change/")
    items = response.context["transcript"]
    ids = [item["message"].pk for item in items]
    # Each version right after the earlier ones of its place, though saved after the failed exchange.
    assert ids.index(rated["second"].pk) == ids.index(rated["good"].pk) + 1
    first, second = items[ids.index(rated["good"].pk)], items[ids.index(rated["second"].pk)]
    assert first["version_label"] == "version 1 of 2" and second["version_label"] == "version 2 of 2"
    assert second["stopped_by"] == "alice"
    assert (first["feedback_up"], first["feedback_down"]) == (1, 1)
    assert {"member": "bob", "value": "down", "comment": "Cites the wrong page"} in first["feedback"]


def test_exports_carry_versions_votes_and_absolute_links(world, history, rated, settings) -> None:
    client = login(world["alice"])
    talk = history["lab_talk"]
    document = json.loads(client.get(f"/rooms/lab/conversations/{talk.pk}/export.json").content)
    record = document["conversations"][0]
    by_id = {m["id"]: m for m in record["messages"]}
    second = by_id[rated["second"].pk]
    assert second["version"] == 2 and second["version_of"] == rated["good"].pk and second["stopped_by"] == "alice"
    assert by_id[rated["good"].pk]["feedback"]["down"] == 1
    assert {"member": "bob", "value": "down", "comment": "Cites the wrong page"} in [
        {k: v[k] for k in ("member", "value", "comment")} for v in by_id[rated["good"].pk]["feedback"]["votes"]
    ]
    assert record["feedback"] == {"up": 2, "down": 1}
    url = by_id[rated["good"].pk]["citations"][0]["references"][0]["url"]
    assert url.startswith("http://testserver/rooms/lab/files/f-otters/")
    markdown = client.get(f"/rooms/lab/conversations/{talk.pk}/export.md").content.decode()
    assert "](http://testserver/rooms/lab/files/f-otters/?page=2#page-2)" in markdown
    assert "](/rooms/" not in markdown  # no site-relative link breaks in the downloaded file
    assert (
        "version 2" in markdown and "cancelled by alice" in markdown and "bob (down): Cites the wrong page" in markdown
    )
    settings.SITE_URL = "https://chat.example.com"
    markdown = client.get(f"/rooms/lab/conversations/{talk.pk}/export.md").content.decode()
    assert "](https://chat.example.com/rooms/lab/files/f-otters/?page=2#page-2)" in markdown


def test_the_usage_report_sums_votes_without_multiplying_tokens(world, history, rated) -> None:
    from assistant_chat.models import Room

    today = timezone.localdate()
    report = usage_report(rooms=Room.objects.all(), start=today - timedelta(days=1), end=today, group_by=("room",))
    lab = next(row for row in report.rows if row.room == "Lab")
    assert (lab.feedback_up, lab.feedback_down) == (2, 1)
    assert lab.prompt_tokens == 100 + 100 + 10  # the good, the failed and the regenerated answer, each once
    assert (report.total.feedback_up, report.total.feedback_down) == (2, 1)


def test_the_file_page_reads_its_status_live(world) -> None:
    _boss, client = superuser_client()
    file = File.objects.filter(assistant=world["assistant"]).first()
    File.objects.filter(pk=file.pk).update(status="Processing", percent_done=0.4)
    page = client.get(f"/admin/assistant_chat/file/{file.pk}/change/").content.decode()
    assert "admin_file_status.js" in page and 'data-status="Processing"' in page
    assert client.get(f"/admin/assistant_chat/file/{file.pk}/status/").json() == {
        "status": "Processing",
        "percent": 40,
        "error_message": "",
        "processing": True,
    }
    File.objects.filter(pk=file.pk).update(status="Available", percent_done=1.0)  # the worker finished
    assert client.get(f"/admin/assistant_chat/file/{file.pk}/status/").json()["percent"] == 100
    # Staff who may not use this assistant learn nothing about its files.
    outsider = login(staff_with("outsider", "view_file"))
    assert outsider.get(f"/admin/assistant_chat/file/{file.pk}/status/").status_code in (302, 403, 404)
    assert login(world["alice"]).get(f"/admin/assistant_chat/file/{file.pk}/status/").status_code == 302


def test_review_still_sees_archived_conversations(world, history) -> None:
    talk = history["lab_talk"]
    talk.archived = True
    talk.save()
    _boss, client = superuser_client()
    assert "Otter questions" in [c.title for c in client.get(LIST).context["cl"].result_list]
    assert [c.title for c in client.get(LIST, {"archived__exact": "1"}).context["cl"].result_list] == [
        "Otter questions"
    ]
