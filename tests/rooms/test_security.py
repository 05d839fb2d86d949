"""The site around the rooms: sign-in required, origin checked on the socket, 404 for strangers on every page."""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from assistant_chat import services
from tests.rooms.helpers import adb, make_assistant, make_room, make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def world():
    alice, carol = make_user("alice"), make_user("carol")
    room = make_room("lab", make_assistant(), [alice])
    make_room("other", room.assistant, [carol])
    conversation = services.conversation_create(room=room, user=alice, title="Plans")
    return {"alice": alice, "carol": carol, "room": room, "conversation": conversation}


def session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()


async def open_socket(
    user, origin: bytes | None, path: str = "/ws/rooms/lab/", host: bytes = b"127.0.0.1:8000", scheme: str = "ws"
) -> bool:
    from chatsite.asgi import application

    headers = [(b"cookie", await adb(session_cookie)(user))] if user else []
    headers.append((b"host", host))
    if origin:
        headers.append((b"origin", origin))
    communicator = WebsocketCommunicator(application, path, headers)
    communicator.scope["scheme"] = scheme
    connected, _ = await communicator.connect()
    if connected:
        await communicator.disconnect()
    return connected


async def test_the_socket_needs_a_session_and_this_sites_origin(world):
    assert await open_socket(world["alice"], b"http://127.0.0.1:8000")
    assert await open_socket(world["alice"], b"http://localhost:8000", host=b"localhost:8000")
    assert not await open_socket(world["alice"], b"https://evil.example")  # another site, the member's cookies
    assert not await open_socket(world["alice"], None)
    assert not await open_socket(None, b"http://127.0.0.1:8000")  # no session
    assert not await open_socket(world["carol"], b"http://127.0.0.1:8000")  # signed in, not a member
    assert not await open_socket(world["alice"], b"http://127.0.0.1:8000", "/ws/rooms/nope/")


def test_pages_need_sign_in(world):
    client = Client()
    for path in ("/", "/rooms/lab/", f"/rooms/lab/files/{world['room'].assistant.files.first().file_id}/"):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_strangers_get_404_on_the_room_its_conversations_and_its_files(world):
    client = Client()
    client.force_login(world["carol"])
    file_id = world["room"].assistant.files.first().file_id
    assert "Lab" not in client.get("/").content.decode()
    assert client.get("/rooms/lab/").status_code == 404
    assert client.get(f"/rooms/lab/files/{file_id}/").status_code == 404
    assert client.get(f"/rooms/other/?c={world['conversation'].pk}").status_code == 404  # wrong room's thread


def test_a_member_sees_the_room_and_opens_a_file_at_a_page(world):
    client = Client()
    client.force_login(world["alice"])
    home = client.get("/").content.decode()
    assert "/rooms/lab/" in home and "/rooms/other/" not in home
    page = client.get("/rooms/lab/").content.decode()
    assert "Plans" in page and "room.js" in page and 'id="room-state"' in page
    file = world["room"].assistant.files.get(name="otters.txt")
    viewer = client.get(f"/rooms/lab/files/{file.file_id}/?page=1")
    assert viewer.status_code == 200 and "Sea otters use rocks" in viewer.content.decode()


def test_csrf_stays_on_for_the_site():
    client = Client(enforce_csrf_checks=True)
    make_user("dave")
    response = client.post("/login/", {"username": "dave", "password": "pw-dave"})
    assert response.status_code == 403


def test_an_answer_whose_process_died_shows_as_interrupted_with_its_saved_text(world):
    from datetime import timedelta

    from django.utils import timezone

    from assistant_chat.models import Message

    dead = Message.objects.create(
        conversation=world["conversation"],
        role="assistant",
        status="streaming",
        content="Half of an answer",
        lease_expires_at=timezone.now() - timedelta(seconds=60),
    )
    client = Client()
    client.force_login(world["alice"])
    page = client.get(f"/rooms/lab/?c={world['conversation'].pk}").content.decode()
    dead.refresh_from_db()
    assert dead.status == "interrupted" and dead.content == "Half of an answer"
    assert "status-interrupted" in page and "The server stopped during this answer." in page


def test_members_search_their_room_and_nobody_else_sees_its_messages(world):
    alice = world["alice"]
    services.message_create(conversation=world["conversation"], author=alice, content="The otters <b>hid</b> rocks")
    client = Client()
    client.force_login(alice)
    page = client.get("/rooms/lab/search/?q=otters").content.decode()
    assert "Plans" in page and "<mark>otters</mark>" in page and "&lt;b&gt;hid&lt;/b&gt;" in page
    assert "No message in this room" in client.get("/rooms/lab/search/?q=giraffes").content.decode()
    carol = Client()
    carol.force_login(world["carol"])
    assert carol.get("/rooms/lab/search/?q=otters").status_code == 404  # a stranger to the room
    elsewhere = carol.get("/rooms/other/search/?q=otters").content.decode()
    assert "<mark>" not in elsewhere and "No message in this room" in elsewhere  # her room, not alice's messages
    assert Client().get("/rooms/lab/search/?q=otters").status_code == 302  # signed out


async def test_the_origin_must_match_exactly_scheme_host_and_port(world, settings):
    alice = world["alice"]
    assert not await open_socket(alice, b"http://127.0.0.1:9999")  # another port of the same host
    assert not await open_socket(alice, b"https://127.0.0.1:8000")  # another scheme
    assert not await open_socket(alice, b"http://localhost:8000")  # another host than the socket's
    assert not await open_socket(alice, b"http://127.0.0.1:8000.evil.example")
    assert not await open_socket(alice, b"null")
    assert not await open_socket(alice, b"http://evil.example:8000", host=b"evil.example:8000")  # not an allowed host
    assert await open_socket(alice, b"https://127.0.0.1", host=b"127.0.0.1", scheme="wss")  # https, default port
    assert await open_socket(alice, b"http://127.0.0.1", host=b"127.0.0.1:80")
    settings.CHAT_ALLOWED_ORIGINS = ["https://chat.example.com"]
    assert await open_socket(alice, b"https://chat.example.com", host=b"127.0.0.1:8000")
    assert await open_socket(alice, b"https://chat.example.com:443")
    assert not await open_socket(alice, b"http://chat.example.com")
    assert not await open_socket(alice, b"https://chat.example.com:8443")


def test_every_html_page_has_a_content_security_policy(world):
    client = Client()
    login = client.get("/login/")
    policy = login["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "img-src 'self' data:" in policy and "object-src 'none'" in policy
    client.force_login(world["alice"])
    file_id = world["room"].assistant.files.first().file_id
    for path in ("/", "/rooms/lab/", f"/rooms/lab/files/{file_id}/", "/rooms/lab/search/?q=x"):
        assert client.get(path)["Content-Security-Policy"] == policy, path
    staff = make_user("staffer", is_staff=True, is_superuser=True)
    client.force_login(staff)
    assert client.get("/admin/")["Content-Security-Policy"] == policy
