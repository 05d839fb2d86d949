"""Scaled out: two Daphne processes on one PostgreSQL database and the Redis channel layer. A member on each
process watches the same answer; a member whose socket drops resumes from the seq they hold and gets exactly
the missing text, from whichever process they land on."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import servers

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.live]

SEED = Path(__file__).with_name("seed_scale_out.py")


def redis_available() -> str | None:
    try:
        import redis

        redis.Redis.from_url(servers.REDIS_TEST_URL, socket_connect_timeout=3).ping()
        return None
    except Exception as exc:
        return f"Redis at {servers.REDIS_TEST_URL} is not reachable: {exc}"


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[servers.LiveServer], dict]]:
    servers.require(servers.postgres_available())
    servers.require(redis_available())
    import redis

    redis.Redis.from_url(servers.REDIS_TEST_URL).flushdb()
    database_url = servers.create_postgres_database()
    env = {
        "REDIS_URL": servers.REDIS_TEST_URL,
        "DJANGO_SECRET_KEY": "shared-" + uuid.uuid4().hex,  # one site: a session made by one process is valid on both
        "OFFLINE_MODEL_WORDS_PER_SECOND": "10",
    }
    started = []
    try:
        for name in ("a", "b"):
            started.append(
                servers.start_server(tmp_path_factory.mktemp(f"scale-{name}"), database_url=database_url, extra_env=env)
            )
        seeded = json.loads(started[0].manage("shell", "-c", SEED.read_text()).strip().splitlines()[-1])
        yield started, seeded
    finally:
        for server in started:
            server.stop()
        servers.drop_postgres_database(database_url)


async def join(server: servers.LiveServer, cookie: str) -> Member:
    """A member's socket on `server`, past its `room.joined`."""
    member = Member(server, cookie)
    await member.connect()
    await member.until("room.joined")
    return member


class Member:
    def __init__(self, server: servers.LiveServer, cookie: str) -> None:
        self.server, self.cookie = server, cookie
        self.events: list[dict[str, Any]] = []
        self.socket: Any = None

    async def connect(self) -> None:
        import websockets

        url = self.server.url.replace("http://", "ws://") + "/ws/rooms/lab/"
        self.socket = await websockets.connect(
            url,
            additional_headers={"Cookie": self.cookie},
            origin=self.server.url,  # type: ignore[arg-type]
        )

    async def until(self, kind: str, wait: float = 20) -> dict[str, Any]:
        async with asyncio.timeout(wait):
            while True:
                event = json.loads(await self.socket.recv())
                self.events.append(event)
                if event["type"] == kind:
                    return event

    async def ask(self, conversation_id: int, content: str) -> None:
        await self.socket.send(
            json.dumps({"type": "message.send", "conversation_id": conversation_id, "content": content})
        )

    def text(self, message_id: int) -> str:
        return "".join(
            e["text"] for e in self.events if e["type"] == "assistant.delta" and e["message_id"] == message_id
        )

    def seqs(self, message_id: int) -> list[int]:
        return [e["seq"] for e in self.events if e["type"] == "assistant.delta" and e["message_id"] == message_id]


async def test_members_on_two_processes_watch_the_same_answer(two_processes):
    (a, b), seeded = two_processes
    alice, bob = await join(a, seeded["cookies"]["alice"]), await join(b, seeded["cookies"]["bob"])
    await alice.ask(seeded["conversation"], "What tools do sea otters use?")
    question = await bob.until("chat.message")  # crossed from process a to b through Redis
    assert question["message"]["author"] == "alice"
    done_a, done_b = await alice.until("assistant.done"), await bob.until("assistant.done")
    final = done_a["message"]
    assert final == done_b["message"] and final["status"] == "complete" and "rocks" in final["content"]
    assert alice.text(final["id"]) == bob.text(final["id"]) == final["content"]
    assert bob.seqs(final["id"]) == list(range(1, final["seq"] + 1))
    await alice.socket.close()
    await bob.socket.close()


@pytest.mark.parametrize("lands_on", ["a", "b"])
async def test_a_member_who_drops_resumes_with_exactly_the_missing_text_wherever_they_land(two_processes, lands_on):
    """On a (the turn's process) the text comes from the runner; on b a fresh hub fetches it over Redis."""
    (a, b), seeded = two_processes
    alice, bob = await join(a, seeded["cookies"]["alice"]), await join(b, seeded["cookies"]["bob"])
    await alice.ask(seeded["conversation"], "Which rocks do sea otters use as tools?")
    start = await bob.until("assistant.start")
    message_id = start["message"]["id"]
    first = await bob.until("assistant.delta")
    held = first["text"]
    await bob.socket.close()  # drops after one delta...
    await asyncio.sleep(0.3)
    bob = await join(a if lands_on == "a" else b, seeded["cookies"]["bob"])
    await bob.socket.send(json.dumps({"type": "turn.resume", "message_id": message_id, "last_seq": first["seq"]}))
    done = await bob.until("assistant.done")
    assert held + bob.text(message_id) == done["message"]["content"]
    carol_like = await join(b, seeded["cookies"]["bob"])  # a third socket on process b, after the end
    await carol_like.socket.send(json.dumps({"type": "turn.resume", "message_id": message_id, "last_seq": 0}))
    again = await carol_like.until("assistant.done")
    assert again["message"]["content"] == done["message"]["content"]
    for member in (alice, bob, carol_like):
        await member.socket.close()


async def test_a_member_who_opens_the_room_on_another_process_mid_turn_is_told_and_catches_up(two_processes):
    (a, b), seeded = two_processes
    alice = await join(a, seeded["cookies"]["alice"])
    await alice.ask(seeded["conversation"], "Sea otter tools?")
    await alice.until("assistant.delta")
    bob = Member(b, seeded["cookies"]["bob"])  # process b has no socket in this room yet: its hub starts now
    await bob.connect()
    start = await bob.until("assistant.start")
    assert start.get("resume") is True
    message_id = start["message"]["id"]
    await bob.socket.send(json.dumps({"type": "turn.resume", "message_id": message_id, "last_seq": 0}))
    done = await bob.until("assistant.done")
    assert bob.text(message_id) == done["message"]["content"]
    seqs = bob.seqs(message_id)
    assert seqs == sorted(set(seqs))  # no delta twice
    await alice.until("assistant.done")
    await alice.socket.close()
    await bob.socket.close()
