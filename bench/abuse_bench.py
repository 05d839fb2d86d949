"""Hostile requests and files against a live server: this commit beside the previous one, in the same run.

For each attack, a fresh server of each commit (its own SQLite database) is started, a concurrent `GET /login/`
probe runs every 100 ms, and the server's resident memory is sampled every 50 ms (the parsing child processes of
this commit are measured apart). The attacks, as issue 13 describes them:

  (a) three parallel 200 MB `multipart/form-data` POSTs to /login/ (streamed with their Content-Length);
  (b) ingestion of a DOCX bomb (document.xml inflating to 1 GB) and a 20,000-page PDF, uploaded through the API;
  (c) 20 viewer requests on those two files (10 each), one at a time, by a room member. Both files are put in
      the database as `Available`, the state the previous commit's ingestion leaves them in after minutes.

The previous commit runs from a `git worktree` in /tmp (nothing is committed there) with plain Daphne, this one
with `python -m chatsite.server`. Each attack has a time cap (`--cap`); a server past `--memory-guard-gb` is
stopped and the row says so. Usage:

    .venv/bin/python bench/abuse_bench.py [--baseline-ref REF] [--cap 60] [--only a,b,c] [--small]

`--small` shrinks every attack (20 MB bodies, a 200 MB bomb, a 3,000-page PDF) to check the script quickly.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.hostile_files import docx_bomb, many_pages_pdf, multipart_stream  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


@dataclass
class Server:
    label: str
    code_dir: Path
    entry: str  # "daphne" or "chatsite.server"
    tmp: Path
    process: subprocess.Popen | None = None
    url: str = ""
    env: dict[str, str] = field(default_factory=dict)
    key: str = ""

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=self.code_dir, env=self.env, capture_output=True, text=True
        )
        if result.returncode:
            raise RuntimeError(f"{self.label}: manage.py {args[0]} failed:\n{result.stderr[-3000:]}")
        return result.stdout

    def start(self) -> None:
        var = self.tmp / f"{self.label}-{uuid.uuid4().hex[:6]}"
        var.mkdir(parents=True)
        port = free_port()
        self.env = {
            **os.environ,
            "CHAT_VAR_DIR": str(var),
            "DATABASE_URL": f"sqlite:///{var / 'db.sqlite3'}",
            "DJANGO_SECRET_KEY": "bench-" + uuid.uuid4().hex,
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "STATIC_MANIFEST": "false",
            "WHITENOISE_USE_FINDERS": "true",
            "PYTHONPATH": str(self.code_dir),
        }
        self.env.pop("REDIS_URL", None)
        self.manage("migrate", "--noinput")
        log = (var / "server.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.entry, "-b", "127.0.0.1", "-p", str(port), "chatsite.asgi:application"],
            cwd=self.code_dir,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(self.url + "/login/", timeout=2)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    log_text = (var / "server.log").read_text()[-2000:]
                    raise RuntimeError(f"{self.label} did not start: {log_text}") from None
                time.sleep(0.2)
        self.key = self.manage("create_api_key", "--quiet").strip()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            for child in children_of(self.process.pid):
                try:
                    os.kill(child, 9)
                except ProcessLookupError:
                    pass
            self.process.kill()
            self.process.wait()


class Watch:
    """Samples the server's memory (and its children's) and probes `GET /login/` until stopped."""

    def __init__(self, server: Server, guard_kb: int) -> None:
        assert server.process is not None
        self.server, self.pid, self.guard_kb = server, server.process.pid, guard_kb
        self.base_kb = rss_kb(self.pid)
        self.peak_kb = self.base_kb
        self.child_peak_kb = 0
        self.latencies: list[float] = []
        self.guard_tripped = False
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._sample), threading.Thread(target=self._probe)]

    def baseline_latency(self, n: int = 15) -> float:
        samples = []
        with httpx.Client(timeout=60) as client:
            for _ in range(n):
                start = time.perf_counter()
                client.get(self.server.url + "/login/")
                samples.append((time.perf_counter() - start) * 1000)
                time.sleep(0.05)
        return statistics.median(samples)

    def __enter__(self) -> Watch:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=70)

    def _sample(self) -> None:
        while not self._stop.is_set():
            rss = rss_kb(self.pid)
            self.peak_kb = max(self.peak_kb, rss)
            children = sum(rss_kb(child) for child in children_of(self.pid))
            self.child_peak_kb = max(self.child_peak_kb, children)
            if rss > self.guard_kb:
                self.guard_tripped = True
                self.server.stop()
                return
            time.sleep(0.05)

    def _probe(self) -> None:
        with httpx.Client(timeout=70) as client:
            while not self._stop.is_set():
                start = time.perf_counter()
                try:
                    client.get(self.server.url + "/login/")
                except httpx.HTTPError:
                    if self._stop.is_set() or self.guard_tripped:
                        return
                self.latencies.append((time.perf_counter() - start) * 1000)
                time.sleep(0.1)


@dataclass
class Row:
    attack: str
    commit: str
    growth_mb: float
    peak_mb: float
    child_peak_mb: float
    base_ms: float
    p50_ms: float
    max_ms: float
    outcome: str


# --- the attacks -------------------------------------------------------------------------------------------------


def attack_bodies(server: Server, cap: float, size: int) -> str:
    def post() -> str:
        host = server.url.split("//")[1]
        hostname, port = host.split(":")
        start = time.monotonic()
        try:
            with socket.create_connection((hostname, int(port)), timeout=cap) as sock:
                sock.sendall(
                    b"POST /login/ HTTP/1.1\r\nHost: %s\r\nContent-Type: multipart/form-data; boundary=zz\r\n"
                    b"Content-Length: %d\r\n\r\n" % (host.encode(), size)
                )
                for chunk in multipart_stream(size):
                    if time.monotonic() - start > cap:
                        return "cap"
                    try:
                        sock.sendall(chunk)
                    except OSError:
                        break
                answer = sock.recv(200)
        except OSError as exc:
            return f"error {type(exc).__name__}"
        status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/") else "no answer"
        return f"{status} in {time.monotonic() - start:.1f} s"

    with ThreadPoolExecutor(3) as pool:
        outcomes = list(pool.map(lambda _: post(), range(3)))
    return ", ".join(outcomes)


def upload(server: Server, assistant: str, name: str, data: bytes, cap: float) -> str:
    response = httpx.post(
        f"{server.url}/assistant/files/{assistant}",
        files={"file": (name, data)},
        headers={"Api-Key": server.key, "X-Pinecone-Api-Version": "2025-10"},
        timeout=cap,
    )
    response.raise_for_status()
    return response.json()["id"]


def create_assistant(server: Server) -> None:
    httpx.post(
        server.url + "/assistant/assistants", json={"name": "hostile"}, headers={"Api-Key": server.key}, timeout=30
    ).raise_for_status()


def attack_ingestion(server: Server, cap: float, bomb: bytes, pdf: bytes) -> str:
    name = "hostile"
    start = time.monotonic()
    ids = {
        "bomb.docx": upload(server, name, "bomb.docx", bomb, cap),
        "pages.pdf": upload(server, name, "pages.pdf", pdf, cap),
    }
    done: dict[str, str] = {}
    while len(done) < len(ids) and time.monotonic() - start < cap and server.process and server.process.poll() is None:
        for file_name, file_id in ids.items():
            if file_name in done:
                continue
            try:
                described = httpx.get(
                    f"{server.url}/assistant/files/{name}/{file_id}", headers={"Api-Key": server.key}, timeout=cap
                ).json()
            except httpx.HTTPError:
                continue
            if described.get("status") != "Processing":
                message = (described.get("error_message") or "")[:70]
                done[file_name] = f"{described.get('status')} in {time.monotonic() - start:.1f} s ({message})"
        time.sleep(0.2)
    return "; ".join(f"{n}: {done.get(n, f'still Processing after {cap:.0f} s')}" for n in ids)


SEED_VIEWER = """
import hashlib, os
from django.contrib.auth import get_user_model
from assistant_chat.models import Assistant, File, FileBlob, Room
assistant = Assistant.objects.create(name="viewed")
ids = []
for name, path in (("bomb.docx", os.environ["BENCH_BOMB"]), ("pages.pdf", os.environ["BENCH_PDF"])):
    data = open(path, "rb").read()
    kind = "doc_x" if name.endswith(".docx") else "pdf"
    f = File.objects.create(assistant=assistant, name=name, kind=kind, size=len(data), status="Available",
                            percent_done=1.0, content_hash=hashlib.sha256(data).hexdigest())
    FileBlob.objects.create(file=f, data=data)
    ids.append(f.file_id)
user = get_user_model().objects.create_user("reader", password="pw-reader")
room = Room.objects.create(name="Viewer", slug="viewer", assistant=assistant)
room.members.set([user])
print("SEEDED", *ids)
"""


def log_in(server: Server, timeout: float) -> httpx.Client:
    client = httpx.Client(base_url=server.url, timeout=timeout)
    page = client.get("/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token is not None
    client.post(
        "/login/",
        data={"username": "reader", "password": "pw-reader", "csrfmiddlewaretoken": token.group(1)},
        headers={"Referer": server.url + "/login/"},
    )
    return client


def seed_viewer(server: Server, bomb_path: Path, pdf_path: Path) -> list[str]:
    env = {**server.env, "BENCH_BOMB": str(bomb_path), "BENCH_PDF": str(pdf_path)}
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", SEED_VIEWER],
        cwd=server.code_dir,
        env=env,
        capture_output=True,
        text=True,
    )
    line = next((line for line in result.stdout.splitlines() if line.startswith("SEEDED ")), None)
    if line is None:
        raise RuntimeError(result.stderr[-2000:])
    return line.split()[1:]


def prepare_viewer(server: Server, cap: float, bomb_path: Path, pdf_path: Path) -> tuple[httpx.Client, list[str]]:
    file_ids = seed_viewer(server, bomb_path, pdf_path)
    return log_in(server, cap), file_ids


def attack_viewer(server: Server, cap: float, prepared: tuple[httpx.Client, list[str]]) -> str:
    client, file_ids = prepared
    start = time.monotonic()
    statuses: dict[int, int] = {}
    sizes: list[int] = []
    done = 0
    for index in range(20):
        if time.monotonic() - start > cap or not server.process or server.process.poll() is not None:
            break
        try:
            response = client.get(
                f"/rooms/viewer/files/{file_ids[index % 2]}/", timeout=max(1.0, cap - (time.monotonic() - start))
            )
        except httpx.HTTPError:
            break
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        sizes.append(len(response.content))
        done += 1
    elapsed = time.monotonic() - start
    shown = ", ".join(f"{count}x {status}" for status, count in sorted(statuses.items()))
    largest = max(sizes) / 1048576 if sizes else 0
    return f"{done}/20 answered in {elapsed:.1f} s ({shown}; largest page {largest:.2f} MB)"


# --- the run -----------------------------------------------------------------------------------------------------


def measure(server: Server, attack: str, guard_kb: int, prepare: Any, run: Any) -> Row:
    server.start()
    try:
        assert server.process is not None
        prepared = prepare(server)  # set-up (seeding, signing in) is not part of the attack
        watch = Watch(server, guard_kb)
        base_ms = watch.baseline_latency()
        watch.base_kb = rss_kb(server.process.pid)
        with watch:
            outcome = run(server, prepared)
        if watch.guard_tripped:
            outcome = f"stopped at the memory guard ({guard_kb / 1048576:.0f} GB); " + outcome
    finally:
        server.stop()
    lat = watch.latencies or [float("nan")]
    outcome += f"; {len(watch.latencies)} probes"
    return Row(
        attack=attack,
        commit=server.label,
        growth_mb=(watch.peak_kb - watch.base_kb) / 1024,
        peak_mb=watch.peak_kb / 1024,
        child_peak_mb=watch.child_peak_kb / 1024,
        base_ms=base_ms,
        p50_ms=statistics.median(lat),
        max_ms=max(lat),
        outcome=outcome,
    )


def baseline_worktree(ref: str) -> Path:
    commit = subprocess.run(
        ["git", "rev-parse", ref], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    path = Path(tempfile.gettempdir()) / f"abuse-bench-{commit[:10]}"
    if not (path / "manage.py").exists():
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(path), commit], cwd=ROOT, check=True, capture_output=True
        )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-ref", default="", help="the previous commit (default: merge-base with main)")
    parser.add_argument("--cap", type=float, default=60.0, help="seconds each attack may run")
    parser.add_argument("--only", default="a,b,c")
    parser.add_argument("--memory-guard-gb", type=float, default=8.0)
    parser.add_argument("--small", action="store_true", help="small attacks, to check the script")
    args = parser.parse_args()

    ref = (
        args.baseline_ref
        or subprocess.run(
            ["git", "merge-base", "HEAD", "main"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    before_dir = baseline_worktree(ref)
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    tmp = Path(tempfile.mkdtemp(prefix="abuse-bench-"))
    body_size = (20 if args.small else 200) * 1024 * 1024
    bomb = docx_bomb((200 if args.small else 1024) * 1024 * 1024)
    pdf = many_pages_pdf(3000 if args.small else 20_000)
    bomb_path, pdf_path = tmp / "bomb.docx", tmp / "pages.pdf"
    bomb_path.write_bytes(bomb)
    pdf_path.write_bytes(pdf)
    guard_kb = int(args.memory_guard_gb * 1048576)
    print(f"Load average (1 min) at start {os.getloadavg()[0]:.2f}")
    print(f"previous commit {ref[:10]} (Daphne), this commit {head} (chatsite.server); cap {args.cap:.0f} s per attack")
    print(
        f"files: DOCX bomb {len(bomb) / 1048576:.1f} MB, PDF {len(pdf) / 1048576:.1f} MB; bodies {body_size / 1048576:.0f} MB\n"
    )

    nothing = lambda server: None  # noqa: E731
    attacks = {
        "a": ("(a) 3 x 200 MB multipart POST", nothing, lambda s, _: attack_bodies(s, args.cap, body_size)),
        "b": (
            "(b) ingest DOCX bomb + 20,000-page PDF",
            create_assistant,
            lambda s, _: attack_ingestion(s, args.cap, bomb, pdf),
        ),
        "c": (
            "(c) 20 viewer requests",
            lambda s: prepare_viewer(s, args.cap, bomb_path, pdf_path),
            lambda s, prepared: attack_viewer(s, args.cap, prepared),
        ),
    }
    rows = []
    for key in args.only.split(","):
        title, prepare, run = attacks[key]
        for label, code_dir, entry in (("previous", before_dir, "daphne"), ("this", ROOT, "chatsite.server")):
            row = measure(Server(label, code_dir, entry, tmp), title, guard_kb, prepare, run)
            rows.append(row)
            print(
                f"{row.attack} [{row.commit}]: +{row.growth_mb:.0f} MB, /login/ p50 {row.p50_ms:.0f} ms max {row.max_ms:.0f} ms; {row.outcome}",
                flush=True,
            )

    print(
        "\n| attack | commit | server memory growth (peak) MB | parser processes peak MB | GET /login/ ms: alone, p50 during (added), max during (added) | outcome |"
    )
    print("| --- | --- | ---: | ---: | --- | --- |")
    for row in rows:
        print(
            f"| {row.attack} | {row.commit} | {row.growth_mb:,.0f} ({row.peak_mb:,.0f}) | {row.child_peak_mb:,.0f} | "
            f"{row.base_ms:.1f}; {row.p50_ms:,.1f} (+{row.p50_ms - row.base_ms:,.1f}); {row.max_ms:,.1f} "
            f"(+{row.max_ms - row.base_ms:,.1f}) | {row.outcome} |"
        )
    print(f"\nLoad average (1 min) at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
