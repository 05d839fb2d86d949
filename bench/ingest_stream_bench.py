"""A room's streaming while a 9 MB file is being ingested: ingestion in the web process (before: the commit this
branch started from, checked out with `git worktree add` in /tmp, nothing committed there) against ingestion in
the job worker (after: this tree), in one run, on SQLite and PostgreSQL.

    .venv/bin/python bench/ingest_stream_bench.py                      # both engines, 100 members
    .venv/bin/python bench/ingest_stream_bench.py --engines sqlite --members 20 --files 1   # a quick look

Each variant gets a fresh database, one Daphne process (plus, after, one worker), the built-in offline model at
--rate words per second, and --members signed-in members in one room (websocket clients in this process). First
--quiet-turns answers with nothing else running (the noise floor), then answers back to back while --files
9 MB Markdown files are uploaded through the API one after the other, until the last is Available.
For every member and every frame of an answer: lateness = arrival - (arrival of that member's first frame +
words since then / rate), i.e. how far the stream fell behind the model's steady pace; p50/p99 over all
(member, frame) pairs. Also time to first token (question sent -> first frame, per member) and the longest gap
between two frames of one answer. Same machine for server and clients (2 cores): both variants pay the same.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
PG_ADMIN = os.environ.get("BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
PIECE = re.compile(r"\S+\s*")
QUESTION = "How do sea otters use rocks and kelp, and how do they keep warm in cold water?"

SEED = """
import json
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
from assistant_chat import services
from assistant_chat.models import Room
User = get_user_model()
room_assistant = services.assistant_create(name="otters")
facts = [
    "Sea otters use rocks as tools to crack open shellfish such as clams, mussels and sea urchins on their chests.",
    "Sea otters wrap themselves in kelp so that the current does not carry them away while they sleep.",
    "Sea otters keep warm in cold water with the densest fur of any animal, up to a million hairs per square inch.",
    "Sea otters groom their fur for hours every day, blowing air into it so that it traps warmth and stays dry.",
    "Sea otters eat about a quarter of their body weight each day to fuel their fast metabolism in cold water.",
]
text = "\\n\\n".join(" ".join(facts[i:] + facts[:i]) for i in range(5))
services.file_upload(assistant=room_assistant, name="otters.txt", data=text.encode())[2].result(120)
services.assistant_create(name="bulk")
members = [User.objects.create_user(f"m{i:03d}") for i in range(MEMBERS)]
room = Room.objects.create(name="Bench", slug="bench", assistant=room_assistant, model="offline")
room.members.set(members)
conversation = services.conversation_create(room=room, user=members[0], title="Bench")
cookies = []
for user in members:
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    cookies.append(f"{settings.SESSION_COOKIE_NAME}={session.session_key}")
_key, raw = services.api_key_create(name="bench")
print(json.dumps({"conversation": conversation.pk, "cookies": cookies, "key": raw}))
"""


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def big_markdown(seed: int, size: int = 9_000_000) -> bytes:
    rng = random.Random(seed)
    words = [f"w{n}" for n in range(5000)] + ["glacier", "market", "press", "honey", "comb"]
    parts, total, index = [], 0, 0
    while total < size:
        if index % 40 == 0:
            parts.append(f"## Part {index // 40}")
        paragraph = " ".join(rng.choice(words) for _ in range(120)) + "."
        parts.append(paragraph)
        total += len(paragraph) + 2
        index += 1
    return "\n\n".join(parts).encode()[:size]


def before_worktree(ref: str) -> Path:
    sha = subprocess.run(["git", "rev-parse", ref], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    path = Path(tempfile.gettempdir()) / f"chat-bench-before-{sha[:12]}"
    if not path.exists():
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(path), sha], cwd=ROOT, check=True, capture_output=True
        )
    return path


@dataclass
class Variant:
    name: str
    code: Path
    worker: bool
    processes: list[subprocess.Popen] = field(default_factory=list)


@dataclass
class Member:
    cookie: str
    socket: object = None
    frames: list[tuple[float, dict]] = field(default_factory=list)
    done: dict[int, asyncio.Event] = field(default_factory=dict)


@dataclass
class Samples:
    lateness: list[float] = field(default_factory=list)
    first: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)
    turns: int = 0


def start(variant: Variant, engine: str, args: argparse.Namespace) -> tuple[dict, str, dict]:
    tmp = Path(tempfile.mkdtemp(prefix=f"chat-bench-{variant.name}-"))
    database_url = f"sqlite:///{tmp / 'db.sqlite3'}"
    if engine == "postgres":
        import psycopg

        name = f"chat_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        database_url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "REDIS_", "JOBS_", "METRICS_"))},
        "CHAT_VAR_DIR": str(tmp),
        "DATABASE_URL": database_url,
        "DJANGO_SECRET_KEY": "bench-" + uuid.uuid4().hex,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "STATIC_MANIFEST": "false",
        "WHITENOISE_USE_FINDERS": "true",
        "OFFLINE_MODEL_WORDS_PER_SECOND": str(args.rate),
        "INGEST_WORKERS": "2",
        "JOBS_MODE": "worker",
        "METRICS_DIR": str(tmp / "metrics"),
        "CHAT_RATE_LIMIT_MESSAGES": "1000",
        "PYTHONUNBUFFERED": "1",
    }
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "--noinput"], cwd=variant.code, env=env, check=True, capture_output=True
    )
    port = free_port()
    if variant.worker:
        worker = subprocess.Popen(
            [PYTHON, "manage.py", "run_worker", "--worker-id", "bench-1"],
            cwd=variant.code,
            env=env,
            stdout=(tmp / "worker.log").open("w"),
            stderr=subprocess.STDOUT,
        )
        variant.processes.append(worker)
    seed = SEED.replace("MEMBERS", str(args.members))
    out = subprocess.run(
        [PYTHON, "manage.py", "shell", "-c", seed],
        cwd=variant.code,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    seeded = json.loads(out.stdout.strip().splitlines()[-1])
    daphne = subprocess.Popen(
        [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "chatsite.asgi:application"],
        cwd=variant.code,
        env=env,
        stdout=(tmp / "daphne.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    variant.processes.append(daphne)
    import httpx

    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/login/", timeout=2)
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise RuntimeError((tmp / "daphne.log").read_text()[-3000:]) from None
            time.sleep(0.2)
    return seeded, f"127.0.0.1:{port}", {"tmp": tmp, "database_url": database_url, "env": env}


def stop(variant: Variant, info: dict) -> None:
    for process in variant.processes:
        process.terminate()
    for process in variant.processes:
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
    variant.processes.clear()
    if info["database_url"].startswith("postgres"):
        import psycopg

        name = info["database_url"].rsplit("/", 1)[1]
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    shutil.rmtree(info["tmp"], ignore_errors=True)


async def connect(address: str, member: Member) -> None:
    import websockets

    member.socket = await websockets.connect(
        f"ws://{address}/ws/rooms/bench/",
        additional_headers={"Cookie": member.cookie},
        origin=f"http://{address}",  # type: ignore[arg-type]
        max_queue=None,
    )

    async def read() -> None:
        async for raw in member.socket:  # type: ignore[attr-defined]
            now = time.perf_counter()
            event = json.loads(raw)
            member.frames.append((now, event))
            if event["type"] == "assistant.done":
                member.done.setdefault(event["message"]["id"], asyncio.Event()).set()

    asyncio.ensure_future(read())


async def one_turn(members: list[Member], conversation: int, rate: float, samples: Samples) -> None:
    marks = [len(m.frames) for m in members]
    sent = time.perf_counter()
    await members[0].socket.send(
        json.dumps({"type": "message.send", "conversation_id": conversation, "content": QUESTION})
    )  # type: ignore[attr-defined]
    # The answer's id, from the first member's stream.
    message_id = None
    while message_id is None:
        await asyncio.sleep(0.01)
        for _t, event in members[0].frames[marks[0] :]:
            if event["type"] == "assistant.start":
                message_id = event["message"]["id"]
                break
    await asyncio.wait_for(
        asyncio.gather(*(m.done.setdefault(message_id, asyncio.Event()).wait() for m in members)), 120
    )
    samples.turns += 1
    for member, mark in zip(members, marks, strict=True):
        deltas = [
            (t, e) for t, e in member.frames[mark:] if e["type"] == "assistant.delta" and e["message_id"] == message_id
        ]
        if not deltas:
            continue
        first_time, first_event = deltas[0]
        samples.first.append((first_time - sent) * 1000)
        words = len(PIECE.findall(first_event["text"]))
        previous = first_time
        for arrived, event in deltas[1:]:
            words += len(PIECE.findall(event["text"]))
            due = first_time + (words - len(PIECE.findall(first_event["text"]))) / rate
            samples.lateness.append(max(0.0, arrived - due) * 1000)
            samples.gaps.append((arrived - previous) * 1000)
            previous = arrived


async def drive(address: str, seeded: dict, args: argparse.Namespace) -> dict[str, Samples]:
    import httpx

    members = [Member(cookie) for cookie in seeded["cookies"]]
    await asyncio.gather(*(connect(address, m) for m in members))
    await asyncio.sleep(1.0)
    quiet, busy = Samples(), Samples()
    for _ in range(args.quiet_turns):
        await one_turn(members, seeded["conversation"], args.rate, quiet)
    async with httpx.AsyncClient(base_url=f"http://{address}", timeout=120) as client:
        headers = {"Api-Key": seeded["key"], "X-Pinecone-Api-Version": "2026-04"}

        async def ingest_all() -> None:
            # One file after the other, each until Available: the answers below run the whole time.
            for number in range(args.files):
                data = big_markdown(seed=number)
                started = time.perf_counter()
                response = await client.post(
                    "/assistant/files/bulk", headers=headers, files={"file": (f"bulk{number}.md", data)}
                )
                assert response.status_code == 202, response.text
                operation = response.json()
                while operation["status"] == "Processing":
                    await asyncio.sleep(0.2)
                    operation = (
                        await client.get(f"/assistant/operations/bulk/{operation['id']}", headers=headers)
                    ).json()
                assert operation["status"] == "Completed", operation
                print(f"    file {number + 1}: ingested in {time.perf_counter() - started:.1f} s", flush=True)

        ingesting = asyncio.ensure_future(ingest_all())
        await asyncio.sleep(0.3)  # the upload is on its way
        while not ingesting.done():
            await one_turn(members, seeded["conversation"], args.rate, busy)
        await ingesting
    for member in members:
        await member.socket.close()  # type: ignore[attr-defined]
    return {"quiet": quiet, "ingesting": busy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before-ref", default="", help="commit for 'before' (default: merge-base of HEAD and main)")
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--files", type=int, default=3, help="9 MB files ingested one after the other")
    parser.add_argument("--quiet-turns", type=int, default=3)
    parser.add_argument("--rate", type=float, default=40.0, help="offline model words per second")
    parser.add_argument("--keep-worktree", action="store_true")
    args = parser.parse_args()
    ref = (
        args.before_ref
        or subprocess.run(
            ["git", "merge-base", "HEAD", "main"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    before = before_worktree(ref)
    load_before = os.getloadavg()[0]
    results: dict[tuple[str, str, str], Samples] = {}
    try:
        for engine in args.engines.split(","):
            for variant in (Variant("before", before, worker=False), Variant("after", ROOT, worker=True)):
                print(f"{engine} / {variant.name} ...", flush=True)
                seeded, address, info = start(variant, engine, args)
                try:
                    for phase, samples in asyncio.run(drive(address, seeded, args)).items():
                        results[(engine, variant.name, phase)] = samples
                finally:
                    stop(variant, info)
    finally:
        if not args.keep_worktree:
            subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT, capture_output=True)
    load_after = os.getloadavg()[0]
    print(f"\nbefore = {ref[:7]} (ingestion in the web process), after = {head} (ingestion in the worker)")
    print(f"{args.members} members, offline model at {args.rate:g} words/s, {args.files} x 9 MB files ingested")
    print(f"Load average (1 min) at start {load_before:.2f}, at end {load_after:.2f}.\n")
    print(
        "| engine | code | phase | answers | frames | lateness p50 ms | lateness p99 ms | TTFT p50 ms | TTFT p99 ms | longest gap p99 ms |"
    )
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for (engine, variant, phase), s in results.items():
        print(
            f"| {engine} | {variant} | {phase} | {s.turns} | {len(s.lateness)} | {percentile(s.lateness, 50):.1f} "
            f"| {percentile(s.lateness, 99):.1f} | {percentile(s.first, 50):.0f} | {percentile(s.first, 99):.0f} "
            f"| {percentile(s.gaps, 99):.0f} |"
        )
    _ = statistics  # (kept for ad-hoc analysis)


if __name__ == "__main__":
    main()
