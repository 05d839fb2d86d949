"""Room fan-out: how many frames a room's members receive per second, how long each token takes from the upstream
to every member's screen, and whether every member ends with exactly the final text; ours against the textbook
Channels design (a group and one `group_send` per delta), in one run on one Daphne process.

    .venv/bin/python bench/fanout_bench.py [--members 10,100,500,1000] [--tokens 500] [--rate 100]
                                           [--coalesce-ms 0,40] [--baseline-members 10,100,500,1000]

Setup: Daphne (as the product runs it, `python -m chatsite.server`) serving `bench.baseline_app:application` (the whole site from `chatsite.asgi` plus the textbook
consumer at ws/baseline/<slug>/) on its own SQLite database, migrated, in-memory channel layer, with a room whose
model is a registered endpoint pointing at a local OpenAI-compatible upstream (its own process) that streams
`--tokens` unique tokens ("t0000 ", "t0001 ", ...) at `--rate` tokens per second on a fixed schedule and records
each token's emit time (time.time()). The room has as many distinct members as the largest row, each with a real
login session (cookie); sockets send the site's Origin. For each `--coalesce-ms` value the database is set up once
with CHAT_COALESCE_MS set to it (the baseline's fake turn uses the same window), and every row gets a fresh Daphne
process (a baseline row that times out would otherwise keep draining its backlog into the next row).

Each row: M websocket clients connect (one process per 250 clients, each one event loop, uvloop when installed,
with a minimal websocket client that only timestamps and buffers what arrives; frames are decoded after the turn),
the bench waits until no bytes have arrived for a second (joins and presence settled), one member sends
`message.send`, and every client records every frame until `assistant.done` or `--timeout` (time.time(): one clock
for every process on this machine). Uncoalesced baseline rows needing more than `--baseline-budget` layer messages
are skipped (they outlive the in-memory layer's 60 s message expiry).

Figures: delivered frames/s = `assistant.delta` frames received across all clients / (last delta received - first
token emitted); per-token latency = when a token's text first appears in a client's assembled text - when the
upstream emitted it, over all clients and tokens (p50, p99); lost/duplicated = tokens missing from or repeated in
a client's text; clients whose assembled deltas differ from the `assistant.done` text (or who got no done). CPU
columns: cores used by the server, the clients (receiving only) and every other process on the machine (from
/proc/stat) while the turn streamed. `--profile PREFIX` samples the server with py-spy during each turn.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import json
import math
import multiprocessing as mp
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from local_upstream import free_port, upstream_process

ROOT = Path(__file__).resolve().parents[1]
CLIENTS_PER_PROCESS = 250
TOKEN_RE = re.compile(r"t\d{4} ")


def token(index: int) -> str:
    return f"t{index:04d} "


# --- the clients (one asyncio process per CLIENTS_PER_PROCESS sockets) ---------------------------------------------


class WsClient(asyncio.Protocol):
    """A minimal websocket client: handshake, then timestamp and buffer every text frame that belongs to a turn.
    Answers pings (Daphne pings idle sockets), decodes nothing until the run is over."""

    def __init__(self, host: str, port: int, path: str, session: str) -> None:
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: http://{host}:{port}\r\nCookie: sessionid={session}\r\n\r\n"
        ).encode()
        self.transport: asyncio.Transport | None = None
        self.upgraded: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.buffer = bytearray()
        self.frames: list[tuple[float, bytes]] = []
        self.received_bytes = 0
        self.other_frames = 0
        self.status = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.upgraded.done():
            self.upgraded.set_result(False)
        if not self.done.done():
            self.done.set_result(None)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        self.received_bytes += len(data)
        self.buffer += data
        if not self.upgraded.done():
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            self.status = bytes(self.buffer[:end]).split(b"\r\n", 1)[0].decode(errors="replace")
            ok = self.status.startswith("HTTP/1.1 101")
            del self.buffer[: end + 4]
            self.upgraded.set_result(ok)
            if not ok:
                return
        buf, pos, size = self.buffer, 0, len(self.buffer)
        while size - pos >= 2:
            opcode, length, header = buf[pos] & 0x0F, buf[pos + 1] & 0x7F, 2
            if length == 126:
                if size - pos < 4:
                    break
                length, header = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, header = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if size - pos < header + length:
                break
            payload = bytes(buf[pos + header : pos + header + length])
            pos += header + length
            if opcode == 1:
                if payload.startswith(b'{"type":"assistant.'):
                    self.frames.append((now, payload))
                    if payload.startswith(b'{"type":"assistant.done"') and not self.done.done():
                        self.done.set_result(None)
                else:
                    self.other_frames += 1
            elif opcode == 9:
                self.send_frame(payload, opcode=10)
        del buf[:pos]

    def send_frame(self, payload: bytes, opcode: int = 1) -> None:
        mask = os.urandom(4)
        length = len(payload)
        if length < 126:
            header = bytes([0x80 | opcode, 0x80 | length])
        elif length < 65536:
            header = bytes([0x80 | opcode, 0x80 | 126]) + length.to_bytes(2, "big")
        else:
            header = bytes([0x80 | opcode, 0x80 | 127]) + length.to_bytes(8, "big")
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        assert self.transport is not None
        self.transport.write(header + mask + masked)


def client_main(conn: Connection, config: dict[str, Any]) -> None:
    try:  # libuv's loop roughly halves the clients' CPU per frame, leaving more of the machine to the server
        import uvloop

        uvloop.run(_clients(conn, config))
    except ImportError:
        asyncio.run(_clients(conn, config))


async def _clients(conn: Connection, config: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    host, port, path = config["host"], config["port"], config["path"]
    clients: list[WsClient] = []
    limit = asyncio.Semaphore(16)

    errors: dict[str, int] = {}

    async def open_one(session: str) -> WsClient | None:
        async with limit:
            for _attempt in range(5):
                try:
                    _, client = await loop.create_connection(lambda: WsClient(host, port, path, session), host, port)
                    if await asyncio.wait_for(client.upgraded, 60):
                        return client
                    reason = client.status or "closed during the handshake"
                except (OSError, TimeoutError) as exc:
                    reason = repr(exc)
                errors[reason] = errors.get(reason, 0) + 1
                await asyncio.sleep(0.2)
            return None

    opened = await asyncio.gather(*(open_one(session) for session in config["sessions"]))
    clients = [client for client in opened if client is not None]
    conn.send(("connected", len(clients), len(opened) - len(clients), errors))

    commands: asyncio.Queue[Any] = asyncio.Queue()
    loop.add_reader(conn.fileno(), lambda: commands.put_nowait(conn.recv()))
    while True:
        command = await commands.get()
        if command[0] == "status":
            conn.send(("status", sum(c.received_bytes for c in clients)))
        elif command[0] == "ask":
            frame = {"type": "message.send", "conversation_id": command[1], "content": "Go."}
            clients[0].send_frame(json.dumps(frame).encode())
        elif command[0] == "collect":
            timeout = command[1]
            pending = [c.done for c in clients if not c.done.done()]
            cpu_at_collect = time.process_time()
            if pending:
                await asyncio.wait(pending, timeout=timeout)
            cpu = time.process_time() - cpu_at_collect  # receiving only; decoding comes after
            loop.remove_reader(conn.fileno())
            os.set_blocking(conn.fileno(), True)  # uvloop made the pipe non-blocking; the results are megabytes
            conn.send(("results", [analyse(c.frames, config["expected"]) for c in clients], cpu))
            for client in clients:
                if client.transport is not None:
                    client.transport.close()
            await asyncio.sleep(0.5)
            return


def analyse(frames: list[tuple[float, bytes]], expected: str) -> dict[str, Any]:
    """One client's view of the turn: its text, when each token first appeared, what was lost or repeated."""
    texts: list[str] = []
    ends: list[int] = []
    times: list[float] = []
    seqs: list[int] = []
    final: str | None = None
    total = 0
    for received, payload in frames:
        event = json.loads(payload)
        if event["type"] == "assistant.delta":
            texts.append(event["text"])
            total += len(event["text"])
            ends.append(total)
            times.append(received)
            seqs.append(event["seq"])
        elif event["type"] in ("assistant.done", "assistant.error"):
            final = event["message"]["content"]
    assembled = "".join(texts)
    token_times: list[float | None] = []
    position = 0
    for index in range(len(TOKEN_RE.findall(expected))):
        found = assembled.find(token(index), position)
        if found < 0:
            token_times.append(None)
            continue
        position = found + len(token(index))
        token_times.append(times[bisect.bisect_left(ends, position)])
    counts: dict[str, int] = {}
    for item in TOKEN_RE.findall(assembled):
        counts[item] = counts.get(item, 0) + 1
    return {
        "frames": len(texts),
        "first": times[0] if times else None,
        "last": times[-1] if times else None,
        "token_times": token_times,
        "lost": sum(1 for t in token_times if t is None),
        "duplicated": sum(n - 1 for n in counts.values() if n > 1),
        "got_done": final is not None,
        "matches_done": final is not None and assembled == final,
        "done_is_upstream_text": final is not None and final.strip() == expected.strip(),
        "seq_ok": seqs == list(range(1, len(seqs) + 1)),
    }


# --- the server and the runs ----------------------------------------------------------------------------------------


@dataclass
class Row:
    mode: str
    side: str
    members: int
    connected: int = 0
    frames: int = 0
    frames_per_second: float = 0.0
    p50: float = math.nan
    p99: float = math.nan
    lost: int = 0
    duplicated: int = 0
    mismatched: int = 0
    no_done: int = 0
    lag: float = math.nan
    server_cpu: float = 0.0
    clients_cpu: float = 0.0
    machine_cpu: float = 0.0
    wall: float = 0.0
    notes: list[str] = field(default_factory=list)


def manage(env: dict[str, str], *args: str) -> str:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    ).stdout


SETUP = """
import json
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.sessions.backends.db import SessionStore
from django.db import transaction
from assistant_chat import services
from assistant_chat.models import Assistant, ModelEndpoint, Room
User = get_user_model()
with transaction.atomic():
    ModelEndpoint.objects.create(model_id="fanout-upstream", base_url="{upstream}", upstream_model="bench-upstream")
    assistant = Assistant.objects.create(name="fanout")
    room = Room.objects.create(name="Fan-out", slug="fanout", assistant=assistant, model="fanout-upstream")
    password = make_password(None)
    users = User.objects.bulk_create([User(username=f"member{{i:04d}}", password=password) for i in range({users})])
    room.members.set(users)
    sessions = []
    for user in users:
        store = SessionStore()
        store["_auth_user_id"] = str(user.pk)
        store["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
        store["_auth_user_hash"] = user.get_session_auth_hash()
        store.create()
        sessions.append(store.session_key)
    conversations = [services.conversation_create(room=room, user=users[0], title=f"run {{i}}").pk for i in range({runs})]
print(json.dumps({{"sessions": sessions, "conversations": conversations}}))
"""


class Server:
    def __init__(self, tmp: Path, upstream: str, coalesce_ms: int, users: int, runs: int) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "CHAT_VAR_DIR": str(tmp),
            "DJANGO_SECRET_KEY": "fanout-bench",
            "STATIC_MANIFEST": "false",
            "LOG_LEVEL": "WARNING",
            "CHAT_COALESCE_MS": str(coalesce_ms),
            "CHAT_RATE_LIMIT_MESSAGES": "100000",
            "BASELINE_UPSTREAM_URL": upstream,
        }
        for name in ("DATABASE_URL", "REDIS_URL"):
            self.env.pop(name, None)
        manage(self.env, "migrate", "-v0")
        out = manage(self.env, "shell", "-c", SETUP.format(upstream=upstream, users=users, runs=runs))
        setup = json.loads(out.strip().splitlines()[-1])
        self.sessions: list[str] = setup["sessions"]
        self.conversations: list[int] = setup["conversations"]
        self.log = (tmp / "daphne.log").open("w")
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "chatsite.server",
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                "bench.baseline_app:application",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/login/", timeout=1).read()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("Daphne did not start")

    def restart(self) -> None:
        """A fresh process for every row: a baseline row that timed out leaves its backlog running otherwise."""
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.start()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        self.log.close()


def upstream_emits(port: int) -> list[float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/emits", timeout=10) as response:
        return json.loads(response.read())


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """Busy and total CPU seconds of the whole machine (every core), to show what else was running."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = values[3] + values[4]
    return (sum(values) - idle) / tick, sum(values) / tick


def percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def run_row(
    server: Server, upstream_port: int, mode: str, side: str, members: int, conversation: int, args: argparse.Namespace
) -> Row:
    row = Row(mode, side, members)
    expected = "".join(token(i) for i in range(args.tokens))
    path = "/ws/rooms/fanout/" if side == "ours" else "/ws/baseline/fanout/"
    sessions = server.sessions[:members]
    processes = max(1, math.ceil(members / CLIENTS_PER_PROCESS))
    workers: list[tuple[mp.Process, Connection]] = []
    for index in range(processes):
        parent, child = mp.Pipe()
        config = {
            "host": "127.0.0.1",
            "port": server.port,
            "path": path,
            "sessions": sessions[index::processes],
            "expected": expected,
        }
        process = mp.Process(target=client_main, args=(child, config), daemon=True)
        process.start()
        workers.append((process, parent))
    try:
        for _, conn in workers:
            _, ok, failed, errors = conn.recv()
            row.connected += ok
            if failed:
                row.notes.append(f"{failed} sockets failed to connect")
            if errors:
                print(f"connection attempts that failed (retried up to 5 times): {errors}", file=sys.stderr)
        # Wait until joins and presence updates have stopped arriving.
        quiet_since, last_total, deadline = time.monotonic(), -1, time.monotonic() + 120
        while time.monotonic() < deadline:
            for _, conn in workers:
                conn.send(("status",))
            total = sum(conn.recv()[1] for _, conn in workers)
            if total != last_total:
                last_total, quiet_since = total, time.monotonic()
            elif time.monotonic() - quiet_since >= 1.0:
                break
            time.sleep(0.25)
        cpu_before, machine_before = process_cpu(server.process.pid), machine_busy()
        workers[0][1].send(("ask", conversation))
        if args.profile:  # sample the server while the turn streams (py-spy on PATH or given)
            out = f"{args.profile}-{mode.split()[0]}-{side}-{members}.txt"
            seconds = str(math.ceil(args.tokens / args.rate))
            command = [args.py_spy, "record", "-p", str(server.process.pid), "-d", seconds, "-f", "raw", "-o", out]
            subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _, conn in workers:
            conn.send(("collect", args.timeout))
        results: list[dict[str, Any]] = []
        for index, (_, conn) in enumerate(workers):
            _, client_results, client_cpu = conn.recv()
            results += client_results
            row.clients_cpu += client_cpu
            if index == 0:
                # Until the first worker has everything: the stream is over (the others finish at the same time).
                machine_after = machine_busy()
                row.server_cpu = process_cpu(server.process.pid) - cpu_before
                row.machine_cpu = machine_after[0] - machine_before[0]
                row.wall = (machine_after[1] - machine_before[1]) / (os.cpu_count() or 1)
    finally:
        for process, _ in workers:
            process.join(10)
            if process.is_alive():
                process.kill()
    emits = upstream_emits(upstream_port)
    latencies: list[float] = []
    for result in results:
        row.frames += result["frames"]
        row.lost += result["lost"]
        row.duplicated += result["duplicated"]
        row.mismatched += 0 if result["matches_done"] and result["seq_ok"] else 1  # includes clients with no done
        row.no_done += 0 if result["got_done"] else 1
        latencies += [t - emits[i] for i, t in enumerate(result["token_times"]) if t is not None]
    if results and not all(r["done_is_upstream_text"] for r in results if r["got_done"]):
        row.notes.append("assistant.done text differs from the upstream's tokens")
    lasts = [r["last"] for r in results if r["last"] is not None]
    if lasts and emits:
        row.frames_per_second = row.frames / (max(lasts) - emits[0])
        row.lag = max(lasts) - emits[-1]
    if latencies:
        latencies.sort()
        row.p50, row.p99 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
    time.sleep(2)  # let the server see the sockets go before the next row
    return row


def print_rows(rows: list[Row], args: argparse.Namespace) -> None:
    print(
        f"\nUpstream: {args.tokens} tokens at {args.rate:g} tokens/s ({args.tokens / args.rate:g} s); one Daphne "
        f"process; in-memory channel layer; {CLIENTS_PER_PROCESS} clients per client process.\n"
    )
    print(
        "| coalescing | members | design | frames received | delivered frames/s | ours / baseline | p50 ms | p99 ms "
        "| last frame after last token, s | lost tokens | duplicated tokens | clients whose text != done (or no done) "
        "| server CPU, cores | clients CPU, cores | other processes, cores |"
    )
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        base = next((r for r in rows if r.mode == row.mode and r.members == row.members and r.side == "baseline"), None)
        ratio = (
            f"{row.frames_per_second / base.frames_per_second:.1f}x"
            if row.side == "ours" and base and base.frames_per_second
            else ""
        )
        wall = row.wall or 1.0
        label = "ours (hub per process, pre-encoded)" if row.side == "ours" else "baseline (group_send per member)"
        extra = f" ({'; '.join(row.notes)})" if row.notes else ""
        print(
            f"| {row.mode} | {row.members:,} | {label}{extra} | {row.frames:,} | {row.frames_per_second:,.0f} | {ratio} "
            f"| {row.p50:.1f} | {row.p99:.1f} | {row.lag:.2f} | {row.lost:,} | {row.duplicated:,} "
            f"| {row.mismatched:,} | {row.server_cpu / wall:.2f} | {row.clients_cpu / wall:.2f} "
            f"| {max(0.0, row.machine_cpu - row.server_cpu - row.clients_cpu) / wall:.2f} |"
        )
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", default="10,100,500,1000")
    parser.add_argument("--baseline-members", default="10,100,500,1000")
    parser.add_argument("--tokens", type=int, default=500)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--coalesce-ms", default="0,40", help="one Daphne per value; both designs use the window")
    parser.add_argument("--timeout", type=float, default=120.0, help="how long clients wait for assistant.done")
    parser.add_argument(
        "--baseline-budget",
        type=int,
        default=300_000,
        help="skip uncoalesced baseline rows that need more layer messages than this (members x tokens)",
    )
    parser.add_argument("--profile", default="", help="write py-spy samples of the server per row to PREFIX-*.txt")
    parser.add_argument("--py-spy", default="py-spy")
    args = parser.parse_args()
    members = [int(m) for m in args.members.split(",")]
    baseline_members = {int(m) for m in args.baseline_members.split(",") if m}
    windows = [int(w) for w in args.coalesce_ms.split(",")]
    up_port = free_port()
    upstream = upstream_process(up_port, args.tokens, args.rate, token)
    rows: list[Row] = []
    try:
        for window in windows:
            mode = f"{window} ms" if window else "none (a frame per token)"
            with tempfile.TemporaryDirectory() as tmp:
                server = Server(Path(tmp), f"http://127.0.0.1:{up_port}/v1", window, max(members), len(members))
                try:
                    for index, count in enumerate(members):
                        for side in ("ours", "baseline"):
                            if side == "baseline" and count not in baseline_members:
                                continue
                            if side == "baseline" and not window and count * args.tokens > args.baseline_budget:
                                print(
                                    f"[{mode}] baseline {count}: skipped, {count * args.tokens:,} layer messages is "
                                    f"over --baseline-budget (at ~1,700 a second it outlives the layer's 60 s expiry)",
                                    file=sys.stderr,
                                )
                                continue
                            started = time.monotonic()
                            server.restart()
                            row = run_row(server, up_port, mode, side, count, server.conversations[index], args)
                            rows.append(row)
                            print(
                                f"[{mode}] {side} {count}: {row.frames_per_second:,.0f} frames/s, p50 {row.p50:.1f} ms, "
                                f"p99 {row.p99:.1f} ms, lost {row.lost}, dup {row.duplicated}, "
                                f"mismatched {row.mismatched}, no done {row.no_done}, cpu s: server {row.server_cpu:.1f} "
                                f"clients {row.clients_cpu:.1f} machine {row.machine_cpu:.1f} of {row.wall * (os.cpu_count() or 1):.1f} "
                                f"({time.monotonic() - started:.0f} s) {row.notes}",
                                file=sys.stderr,
                                flush=True,
                            )
                finally:
                    server.stop()
    finally:
        upstream.kill()
    print_rows(rows, args)


if __name__ == "__main__":
    main()
