"""Rooms under faults: how long members wait, and how much text is lost, when Redis restarts, a process dies or is
stopped, or PostgreSQL goes away; several runs of each, with the shipped settings.

    .venv/bin/python bench/faults_bench.py [--runs 3] [--outage 15] [--db-outage 20]

Setup (tests/support/cluster.py, as the fault suite): three Daphne processes ("a", "b", "c") on a PostgreSQL
cluster and a Redis of the bench's own, the scriptable model upstream (tests/faults/upstream.py: numbered words at a
fixed rate), members as websockets clients applying frames the way room.js does (tests/faults/client.py): alice on
"a" (she asks, so her process runs the turn), bob on "b", carol on "c". The room answers only messages addressed to
it, so the probes below start no turns. Lease, checkpoint and drain are the shipped defaults (CHAT_TURN_LEASE_SECONDS
6, CHAT_TURN_CHECKPOINT_SECONDS 1, CHAT_DRAIN_SECONDS 10) unless set in the environment.

Each run, one after another:
- redis: an 8 s answer streams (12 words/s); after 2 s Redis is killed (no persistence: it restarts empty) for
  `--outage` s, so the answer ends while Redis is down. From the moment Redis is started again alice sends a probe
  message every 0.2 s. Figures: recovery = from Redis back until the first probe that reaches all three members
  live has reached them; the answer's last text and end reaching all members, from when it was saved (during the
  outage: each process's supervisor reads it from the database); characters lost = saved text minus what each
  member assembled.
- sigkill: a 30 s answer (10 words/s); after 3 s the runner's process gets SIGKILL. Figures: from the kill to the
  end reaching bob and carol; characters lost = what they saw minus what was saved (the last checkpoint).
- sigterm: the same with SIGTERM: the process drains. Figures: the end reaching bob and carol after the signal;
  characters lost.
- postgres: an 8 s answer; after 4 s PostgreSQL stops (fast shutdown) for `--db-outage` s. Figures: from PostgreSQL
  back to the answer saved (and its end reaching members); characters lost = streamed minus saved.
Killed or stopped processes are started again between runs. The load average is printed at the start and the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.faults.client import Member  # noqa: E402
from tests.support.cluster import Cluster, missing  # noqa: E402

WORD = len("w001 ")


async def room(cluster: Cluster) -> tuple[list[Member], int]:
    members = []
    for user, process in (("alice", "a"), ("bob", "b"), ("carol", "c")):
        urls = [server.url for server in cluster.servers.values()]

        def live(_urls: list[str]) -> str:
            return next(server.url for server in cluster.servers.values() if server.alive())

        member = Member(user, cluster.cookie(user), urls, pick=live)
        await member.start(cluster.servers[process].url)
        await member.until(lambda m=member: any(e["type"] == "room.joined" for _t, e in m.events), 15, "joined")
        members.append(member)
    await members[0].send({"type": "conversation.create", "title": "Bench", "client_id": "bench"})
    created = await members[0].until(
        lambda: next((e for _t, e in members[0].events if e["type"] == "conversation.created"), None), 15
    )
    for member in members:
        member.conversation_id = created["conversation"]["id"]
    return members, created["conversation"]["id"]


async def ask(member: Member, directive: str) -> int:
    client_id = await member.ask(f"@assistant {directive}")
    question = await member.until(lambda: member.question(client_id), 20, "the question")
    return await member.until(
        lambda: next((m for m in member.starts if member.messages[m].get("reply_to") == question["id"]), None), 30
    )


def end_at(member: Member, message_id: int) -> float:
    return next(
        at
        for at, event in member.events
        if event["type"] in ("assistant.done", "assistant.error") and event["message"]["id"] == message_id
    )


def saved(cluster: Cluster, message_id: int) -> tuple[str, str]:
    ((status, content),) = cluster.sql("SELECT status, content FROM assistant_chat_message WHERE id = %s", message_id)
    return status, content


async def run_redis(cluster: Cluster, outage: float) -> dict[str, Any]:
    members, _conversation = await room(cluster)
    alice = members[0]
    try:
        # 8 s of answer: it ends (and is saved) while Redis is down, so its last frames and its end reach members
        # only after Redis is back.
        answer = await ask(alice, "[[words=96 rate=12]]")
        for member in members:
            await member.until(lambda m=member: len(m.text(answer)) > 0, 15)
        await asyncio.sleep(2)
        cluster.redis.stop()
        await asyncio.sleep(outage)
        cluster.redis.start()
        back = time.time()
        probes: list[str] = []
        recovered = None
        while recovered is None and time.time() - back < 60:
            probes.append(await alice.ask(f"probe {len(probes)}"))
            await asyncio.sleep(0.2)
            for client_id in probes:
                arrivals = [
                    next(
                        (t for t, e in m.events if e["type"] == "chat.message" and e.get("client_id") == client_id),
                        None,
                    )
                    for m in members
                ]
                if all(arrival is not None for arrival in arrivals):
                    recovered = max(a for a in arrivals if a is not None) - back
                    break
        for member in members:
            await member.ended_with(answer, 90)
        status, content = saved(cluster, answer)
        ((completed,),) = cluster.sql(
            "SELECT extract(epoch FROM completed_at) FROM assistant_chat_message WHERE id = %s", answer
        )
        return {
            "recovery_s": recovered,
            "answer_end_after_saved_s": max(end_at(m, answer) for m in members) - float(completed),
            "answer_saved_before_back_s": back - float(completed),
            "characters_lost": sum(len(content) - len(m.assembled[answer]) for m in members),
            "status": status,
        }
    finally:
        for member in members:
            await member.stop()


async def run_kill(cluster: Cluster, sig: int) -> dict[str, Any]:
    members, _conversation = await room(cluster)
    alice, bob, carol = members
    alice.reconnect = sig == signal.SIGTERM
    try:
        answer = await ask(alice, "[[words=300 rate=10]]")
        await bob.until(lambda: len(bob.text(answer)) > 30 * WORD, 20)
        cluster.servers["a"].signal(sig)
        at = time.time()
        ends = {m.name: await m.ended_with(answer, 60) for m in (bob, carol)}
        status, content = saved(cluster, answer)
        return {
            "end_reached_members_s": max(end_at(m, answer) for m in (bob, carol)) - at,
            "characters_lost": max(len(m.assembled[answer]) - len(ends[m.name]["content"]) for m in (bob, carol)),
            "status": status,
            "saved_equals_end": all(end["content"] == content for end in ends.values()),
        }
    finally:
        for member in members:
            await member.stop()
        await asyncio.to_thread(cluster.servers["a"].wait, 30)


async def run_postgres(cluster: Cluster, outage: float) -> dict[str, Any]:
    members, _conversation = await room(cluster)
    alice, bob, _carol = members
    try:
        answer = await ask(alice, "[[words=80 rate=10]]")
        await bob.until(lambda: len(bob.text(answer)) > 30 * WORD, 20)
        await asyncio.to_thread(cluster.postgres.stop)
        stopped = time.monotonic()
        await asyncio.sleep(max(0.0, outage - (time.monotonic() - stopped)))
        await asyncio.to_thread(cluster.postgres.start)
        back = time.time()
        for member in members:
            await member.ended_with(answer, 120)
        status, content = saved(cluster, answer)
        return {
            "saved_after_back_s": end_at(alice, answer) - back,
            "characters_lost": max(len(m.assembled[answer]) for m in members) - len(content),
            "status": status,
        }
    finally:
        for member in members:
            await member.stop()


def summary(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--outage", type=float, default=15.0, help="seconds Redis is down")
    parser.add_argument("--db-outage", type=float, default=20.0, help="seconds PostgreSQL is down")
    parser.add_argument("--only", default="redis,sigkill,sigterm,postgres")
    args = parser.parse_args()
    reason = missing()
    if reason:
        sys.exit(f"cannot run: {reason}")
    print(f"load average at start: {os.getloadavg()}", flush=True)
    # Stopped with SIGTERM or SIGINT, the bench still stops what it started (PostgreSQL daemonizes).
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, task.cancel)
    only = set(args.only.split(","))
    cluster = Cluster(Path(tempfile.mkdtemp(prefix="faults-bench-")), processes=3)
    cluster.start()
    cluster.manage("shell", "-c", "from assistant_chat.models import Room; Room.objects.update(reply_mode='addressed')")
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in ("redis", "sigkill", "sigterm", "postgres")}
    try:
        for run in range(args.runs):
            for name in ("redis", "sigkill", "sigterm", "postgres"):
                if name not in only:
                    continue
                cluster.ensure_healthy()
                await asyncio.sleep(1)
                if name == "redis":
                    result = await run_redis(cluster, args.outage)
                elif name == "postgres":
                    result = await run_postgres(cluster, args.db_outage)
                else:
                    result = await run_kill(cluster, signal.SIGKILL if name == "sigkill" else signal.SIGTERM)
                results[name].append(result)
                print(f"run {run + 1} {name}: {json.dumps(result)}", flush=True)
    finally:
        cluster.stop()
    lease = os.environ.get("CHAT_TURN_LEASE_SECONDS", "6 (default)")
    print(
        f"\nruns: {args.runs}; Redis down {args.outage:.0f} s; PostgreSQL down {args.db_outage:.0f} s; lease {lease} s"
    )
    print("figures as min / median / max over the runs\n")
    print("| fault | members wait for | seconds | characters lost per run | saved status |")
    print("| --- | --- | ---: | --- | --- |")
    rows = [
        ("Redis restarted empty", "a new message to reach everyone, after Redis is back", "redis", "recovery_s"),
        (
            "Redis restarted empty",
            "the rest and the end of an answer saved during the outage, after it was saved",
            "redis",
            "answer_end_after_saved_s",
        ),
        ("SIGKILL of the runner's process", "the end, after the kill", "sigkill", "end_reached_members_s"),
        ("SIGTERM of the runner's process", "the end, after the signal", "sigterm", "end_reached_members_s"),
        (
            "PostgreSQL down at a turn's end",
            "the saved answer, after PostgreSQL is back",
            "postgres",
            "saved_after_back_s",
        ),
    ]
    for fault, what, key, figure in rows:
        runs = results[key]
        if not runs:
            continue
        values = [r[figure] for r in runs if r[figure] is not None]
        lost = ", ".join(str(r["characters_lost"]) for r in runs)
        statuses = ", ".join(sorted({r["status"] for r in runs}))
        print(f"| {fault} | {what} | {summary(values)} | {lost} | {statuses} |")
    print(f"\nload average at end: {os.getloadavg()}")


if __name__ == "__main__":
    asyncio.run(main())
