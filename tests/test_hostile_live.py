"""Hostile requests and files against a live server (chatsite.server, Daphne with request limits), on SQLite and
on PostgreSQL: bodies refused on their headers, long URLs, malformed forms, hostile uploads, the viewer and the
staff deny paths, each answered with a clear 4xx while the server keeps serving."""

from __future__ import annotations

import json
import re
import socket
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from bench.hostile_files import docx_bomb, many_pages_pdf
from tests.support.servers import LiveServer

pytestmark = pytest.mark.live


def raw_exchange(server: LiveServer, head: bytes, body_chunks: list[bytes] | None = None) -> bytes:
    """Send raw bytes and read the whole answer (the server closes after a refusal)."""
    address = urlsplit(server.url)
    with socket.create_connection((address.hostname, address.port), timeout=20) as sock:
        sock.sendall(head)
        for chunk in body_chunks or []:
            try:
                sock.sendall(chunk)
            except OSError:
                break  # the server has answered and stopped reading
        answer = b""
        while True:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                break
            if not data:
                break
            answer += data
    return answer


def status_and_body(answer: bytes) -> tuple[int, bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def test_a_body_over_the_limit_is_refused_on_its_headers_on_any_url(live_server_any: LiveServer) -> None:
    # 200 MB announced, nothing sent: the answer comes without the body (and without "100 Continue").
    head = (
        b"POST /login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=zz\r\n"
        b"Expect: 100-continue\r\nContent-Length: 209715200\r\n\r\n"
    )
    answer = raw_exchange(live_server_any, head)
    status, body = status_and_body(answer)
    assert status == 413 and b"100 Continue" not in answer
    assert body == b"The request body is 200.0 MB; the largest accepted here is 2.0 MB\n"
    upload = (
        b"POST /assistant/files/anything HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: multipart/form-data; boundary=zz\r\nContent-Length: 11000000\r\n\r\n"
    )
    status, body = status_and_body(raw_exchange(live_server_any, upload))
    assert status == 413
    assert json.loads(body) == {
        "error": {
            "code": "INVALID_ARGUMENT",
            "message": "The request body is 10.5 MB; the largest accepted here is 10.1 MB",
        },
        "status": 413,
    }


def test_a_chunked_body_is_cut_off_at_the_limit(live_server_any: LiveServer) -> None:
    head = (
        b"POST /assistant/chat/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"10000\r\n" + b"x" * 65536 + b"\r\n"
    status, body = status_and_body(raw_exchange(live_server_any, head, [chunk] * 64))  # 4 MB offered
    assert status == 413 and "larger than 2.0 MB" in json.loads(body)["error"]["message"]


def test_long_urls_get_414_and_long_headers_431(live_server_any: LiveServer) -> None:
    status, body = status_and_body(
        raw_exchange(live_server_any, b"GET /assistant/" + b"a" * 20000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    )
    assert status == 414 and json.loads(body)["status"] == 414
    response = httpx.get(live_server_any.url + "/login/?q=" + "a" * 9000)
    assert response.status_code == 414 and "longer than 8 KB" in response.text
    status, _ = status_and_body(
        raw_exchange(live_server_any, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
    )
    assert status == 431
    many = b"".join(b"X-H%d: %s\r\n" % (n, b"v" * 100) for n in range(200))  # 20 KB of short headers
    status, body = status_and_body(
        raw_exchange(live_server_any, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + many + b"\r\n")
    )
    assert status == 431 and b"larger than 16 KB" in body
    assert httpx.get(live_server_any.url + "/login/").status_code == 200  # and the server carries on


def test_malformed_forms_reach_django_not_a_bare_400(live_server_any: LiveServer) -> None:
    key = {"Api-Key": live_server_any.api_key}
    name = f"forms-{uuid.uuid4().hex[:8]}"
    httpx.post(live_server_any.url + "/assistant/assistants", json={"name": name}, headers=key).raise_for_status()
    for content_type, body in (
        ("multipart/form-data; boundary=zz", b""),
        ("multipart/form-data; boundary=zz", b"--zz\r\nbroken"),
        ("multipart/form-data", b"--zz\r\n\r\n"),
    ):
        for method, path in (("POST", f"/assistant/files/{name}"), ("PUT", f"/assistant/files/{name}/f1")):
            response = httpx.request(
                method, live_server_any.url + path, content=body, headers={**key, "Content-Type": content_type}
            )
            assert response.status_code == 400, (method, content_type, body, response.text)
            assert response.json()["error"]["code"] == "INVALID_ARGUMENT"
    for path in (f"/assistant/chat/{name}", f"/assistant/chat/{name}/chat/completions"):
        response = httpx.post(
            live_server_any.url + path, content=b"", headers={**key, "Content-Type": "multipart/form-data; boundary=zz"}
        )
        assert response.status_code == 400 and response.json()["status"] == 400
    # A page's form with a broken multipart body: Django's own answer (CSRF), not Twisted's empty 400.
    login = httpx.post(
        live_server_any.url + "/login/", content=b"--zz\r\nbroken", headers={"Content-Type": "multipart/form-data"}
    )
    assert login.status_code == 403


def test_json_caller_errors_are_4xx_through_the_server(live_server_any: LiveServer) -> None:
    key = {"Api-Key": live_server_any.api_key, "Content-Type": "application/json"}
    name = f"json-{uuid.uuid4().hex[:8]}"
    httpx.post(live_server_any.url + "/assistant/assistants", json={"name": name}, headers=key).raise_for_status()
    deep = b'{"messages": ' + b"[" * 6000 + b"]" * 6000 + b"}"
    for path in (
        f"/assistant/chat/{name}",
        f"/assistant/chat/{name}/chat/completions",
        f"/assistant/chat/{name}/context",
    ):
        response = httpx.post(live_server_any.url + path, content=deep, headers=key)
        assert response.status_code == 400 and "nested too deeply" in response.json()["error"]["message"], path
    surrogate = b'{"instructions": "\\ud800"}'
    response = httpx.patch(live_server_any.url + f"/assistant/assistants/{name}", content=surrogate, headers=key)
    assert response.status_code == 400 and "lone surrogate" in response.json()["error"]["message"]
    evaluation = httpx.post(live_server_any.url + "/assistant/evaluation/metrics/alignment", content=deep, headers=key)
    assert evaluation.status_code == 422 and evaluation.json()["message"].startswith("The request body is nested")


def wait_for_file(server: LiveServer, name: str, file_id: str, deadline: float = 60) -> dict[str, Any]:
    end = time.monotonic() + deadline
    while True:
        described = httpx.get(
            f"{server.url}/assistant/files/{name}/{file_id}", headers={"Api-Key": server.api_key}
        ).json()
        if described["status"] != "Processing" or time.monotonic() > end:
            return described
        time.sleep(0.2)


def test_hostile_files_end_processing_failed_naming_the_limit(live_server_any: LiveServer) -> None:
    name = f"hostile-{uuid.uuid4().hex[:8]}"
    key = {"Api-Key": live_server_any.api_key}
    httpx.post(live_server_any.url + "/assistant/assistants", json={"name": name}, headers=key).raise_for_status()
    results = {}
    for file_name, data in (
        ("bomb.docx", docx_bomb(150 * 1024 * 1024)),
        ("many.pdf", many_pages_pdf(2500)),
        ("n" * 300 + ".txt", b"A long name."),
    ):
        response = httpx.post(
            f"{live_server_any.url}/assistant/files/{name}", files={"file": (file_name, data)}, headers=key, timeout=60
        )
        assert response.status_code == 200, response.text
        results[file_name[:10]] = wait_for_file(live_server_any, name, response.json()["id"])
    assert results["bomb.docx"]["status"] == "ProcessingFailed"
    assert "unpacks to 150.0 MB" in results["bomb.docx"]["error_message"]
    assert "PARSE_MAX_UNPACKED_BYTES" in results["bomb.docx"]["error_message"]
    assert results["many.pdf"]["status"] == "ProcessingFailed"
    assert results["many.pdf"]["error_message"] == "The PDF has 2,500 pages; the limit is 2,000 pages (PARSE_MAX_PAGES)"
    long_name = results["nnnnnnnnnn"]
    assert long_name["status"] == "Available" and len(long_name["name"]) == 255  # shortened by Django's form parser


SEED = """
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from assistant_chat import services
from assistant_chat.models import Room
User = get_user_model()
suffix = "{suffix}"
mine = services.assistant_create(name="mine-" + suffix)
theirs = services.assistant_create(name="theirs-" + suffix)
services.file_upload(assistant=mine, name="book.pdf", data=bytes.fromhex("{pdf}"))[2].result(60)
services.file_upload(assistant=theirs, name="payroll.txt", data=b"Salaries.", metadata={{"team": "hr"}})[2].result(60)
member = User.objects.create_user("member-" + suffix, password="pw-member-" + suffix)
clerk = User.objects.create_user("clerk-" + suffix, password="pw-clerk-" + suffix, is_staff=True)
clerk.user_permissions.add(*Permission.objects.filter(codename__in=["add_room", "view_room", "change_room"]))
mine.room_staff.add(clerk)
room = Room.objects.create(name="Lab", slug="lab-" + suffix, assistant=mine)
room.members.set([member])
print("SEEDED", mine.pk, theirs.pk, mine.files.get().file_id, theirs.files.get().file_id)
"""


def log_in(server: LiveServer, username: str) -> httpx.Client:
    client = httpx.Client(base_url=server.url, timeout=30)
    page = client.get("/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token is not None
    response = client.post(
        "/login/",
        data={"username": username, "password": "pw-" + username, "csrfmiddlewaretoken": token.group(1)},
        headers={"Referer": server.url + "/login/"},
    )
    assert response.status_code == 302, response.text[:500]
    return client


def test_the_viewer_pages_stored_text_and_staff_see_only_their_assistants(live_server_any: LiveServer) -> None:
    suffix = uuid.uuid4().hex[:8]
    seeded = live_server_any.manage("shell", "-c", SEED.format(suffix=suffix, pdf=many_pages_pdf(45, "Otters").hex()))
    line = next(line for line in seeded.splitlines() if line.startswith("SEEDED "))
    mine_pk, theirs_pk, book_id, payroll_id = line.split()[1:]
    member = log_in(live_server_any, "member-" + suffix)
    viewer = member.get(f"/rooms/lab-{suffix}/files/{book_id}/?page=30")
    assert viewer.status_code == 200 and "Content-Security-Policy" in viewer.headers
    assert 'id="page-30"' in viewer.text and "Part 2 of 3" in viewer.text and viewer.text.count('"page-text"') == 20
    assert member.get(f"/rooms/lab-{suffix}/files/{payroll_id}/").status_code == 404  # not this room's assistant
    clerk = log_in(live_server_any, "clerk-" + suffix)
    count_url = "/admin/assistant_chat/room/filter-count/"
    denied = clerk.get(count_url, params={"assistant": theirs_pk, "filter": '{"team": "hr"}'})
    assert denied.status_code == 403 and "payroll" not in denied.text
    assert clerk.get(count_url, params={"assistant": mine_pk}).json()["names"] == ["book.pdf"]
    assert f">theirs-{suffix}<" not in clerk.get("/admin/assistant_chat/room/add/").text


SEED_ROOM = """
from django.contrib.auth import get_user_model
from assistant_chat import services
from assistant_chat.models import Room
suffix = "{suffix}"
assistant = services.assistant_create(name="sockets-" + suffix)
user = get_user_model().objects.create_user("sock-" + suffix, password="pw-sock-" + suffix)
room = Room.objects.create(name="Sockets", slug="sockets-" + suffix, assistant=assistant)
room.members.set([user])
print("SEEDED")
"""


async def test_sockets_origin_cap_rate_limits_and_bad_frames(live_server_any: LiveServer) -> None:
    import asyncio

    import websockets
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    suffix = uuid.uuid4().hex[:8]
    live_server_any.manage("shell", "-c", SEED_ROOM.format(suffix=suffix))
    client = await asyncio.to_thread(log_in, live_server_any, "sock-" + suffix)
    cookie = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
    url = live_server_any.url.replace("http://", "ws://") + f"/ws/rooms/sockets-{suffix}/"

    async def open_socket(origin: str) -> Any:
        return await websockets.connect(url, additional_headers={"Cookie": cookie}, origin=origin)  # type: ignore[arg-type]

    async def until(socket: Any, kind: str) -> dict[str, Any]:
        async with asyncio.timeout(20):
            while True:
                event = json.loads(await socket.recv())
                if event["type"] == kind:
                    return event

    port = urlsplit(live_server_any.url).port
    for origin in (f"http://127.0.0.1:{port + 1}", f"https://127.0.0.1:{port}", "http://evil.example"):
        with pytest.raises(InvalidStatus):
            await open_socket(origin)
    sockets = [await open_socket(live_server_any.url) for _ in range(20)]  # CHAT_MAX_SOCKETS_PER_USER
    extra = await open_socket(live_server_any.url)
    refusal = await until(extra, "error")
    assert refusal["code"] == "too_many_sockets"
    with pytest.raises(ConnectionClosed) as closed:
        await extra.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4429
    main = sockets[0]
    await main.send('{"type": "conversation.create", "title": ' + "[" * 30000 + "]" * 30000 + "}")
    assert (await until(main, "error"))["message"] == "Frame is nested too deeply."
    for n in range(10):  # CHAT_RATE_LIMIT_CONVERSATIONS per minute
        await main.send(json.dumps({"type": "conversation.create", "title": f"T{n}"}))
        await until(main, "conversation.created")
    await main.send(json.dumps({"type": "conversation.create", "title": "one more"}))
    assert (await until(main, "error"))["code"] == "rate_limited"
    await main.send('{"type": "conversation.rename", "conversation_id": 1, "title": "\\ud800"}')
    assert "not valid Unicode" in (await until(main, "error"))["message"]
    for open_one in sockets:
        await open_one.close()
