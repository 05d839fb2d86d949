"""The reference deployment, driven end to end: nginx (Debian's package) with deploy/nginx/chat.conf in front
of two Daphne processes and a job worker started with the systemd units' own command lines and the production
environment of deploy/chat.env.example, on PostgreSQL and a Redis of the test's own. Only ports, paths, the host
name and the certificate are changed (each substitution is checked to have happened).

A member signs in over HTTPS, opens the room's websocket through the proxy, and the answer streams to members on
both processes; an oversized upload is refused by nginx (413); static files come from nginx; an upload is
processed by the worker."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.deploy.conftest import DEPLOY, env_file, exec_start
from tests.support import servers
from tests.support.own_services import OwnRedis

pytestmark = [pytest.mark.deploy, pytest.mark.postgres, pytest.mark.live]

ROOT = DEPLOY.parent
HOST = "localhost"
SEED = """
import json
from django.contrib.auth import get_user_model
from assistant_chat import services
from assistant_chat.models import Room
User = get_user_model()
assistant = services.assistant_create(name="handbook")
text = " ".join(f"Sea otters use rocks as tools to open shellfish, note {i}." for i in range(30))
services.file_upload(assistant=assistant, name="otters.txt", data=text.encode())[2].result(60)
members = [User.objects.create_user(name, password=name + "-secret-pw") for name in ("alice", "bob")]
room = Room.objects.create(name="Lab", slug="lab", assistant=assistant)
room.members.set(members)
conversation = services.conversation_create(room=room, user=members[0], title="Deploy")
_key, raw = services.api_key_create(name="deploy test")
print(json.dumps({"conversation": conversation.pk, "api_key": raw}))
"""


def render(text: str, replacements: list[tuple[str, str]]) -> str:
    for old, new in replacements:
        assert old in text, f"{old!r} is no longer in the file: update the test's substitutions"
        text = text.replace(old, new)
    return text


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={HOST}",
            "-addext",
            f"subjectAltName=DNS:{HOST}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def wait_port(port: int, process: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited:\n{log.read_text(errors='replace')[-3000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing listens on {port}:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)


class Deployment:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.processes: list[subprocess.Popen] = []
        self.http_port, self.https_port = servers.free_port(), servers.free_port()
        self.web_ports = [servers.free_port(), servers.free_port()]
        self.origin = f"https://{HOST}:{self.https_port}"
        self.cert, self.key = self_signed_certificate(tmp)
        self.tls = ssl.create_default_context(cafile=str(self.cert))

    def environment(self, database_url: str, redis_url: str) -> dict[str, str]:
        env = env_file()
        assert env["DJANGO_HTTPS"] == "true"
        env.update(
            DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
            DJANGO_ALLOWED_HOSTS=HOST,
            DJANGO_CSRF_TRUSTED_ORIGINS=self.origin,
            CHAT_ALLOWED_ORIGINS=self.origin,
            ASSISTANT_PUBLIC_HOST=self.origin,
            DATABASE_URL=database_url,
            REDIS_URL=redis_url,
            CHAT_VAR_DIR=str(self.tmp / "var"),
            STATIC_ROOT=str(self.tmp / "static"),
            METRICS_DIR=str(self.tmp / "var" / "metrics"),
            OFFLINE_MODEL_WORDS_PER_SECOND="40",
        )
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TEST_POSTGRES_DSN")}
        self.env = {**keep, **env, "PYTHONUNBUFFERED": "1"}
        return self.env

    def unit_command(self, words: list[str], instance: str) -> list[str]:
        """A unit's ExecStart with /srv/chat, its virtualenv and %i / %H made this test's."""
        venv_bin = str(Path(sys.executable).parent)
        out = []
        for word in words:
            word = word.replace("/srv/chat/.venv/bin", venv_bin).replace("/srv/chat", str(ROOT))
            out.append(word.replace("%i", instance).replace("%H", "deploytest"))
        return out

    def run_setup(self) -> None:
        """chat-setup.service: migrate and collectstatic (its metrics clean-up is the directory's own)."""
        for words in exec_start("chat-setup.service")[:2]:
            subprocess.run(self.unit_command(words, ""), cwd=ROOT, env=self.env, check=True, capture_output=True)

    def spawn(self, command: list[str], name: str) -> tuple[subprocess.Popen, Path]:
        log = self.tmp / f"{name}.log"
        process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log.open("w"), stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process, log

    def start_site(self) -> None:
        (web,) = exec_start("chat-web@.service")
        for port in self.web_ports:
            process, log = self.spawn(self.unit_command(web, str(port)), f"daphne-{port}")
            wait_port(port, process, log)
        (worker,) = exec_start("chat-worker@.service")
        self.worker, self.worker_log = self.spawn(self.unit_command(worker, "1"), "worker")

    def start_nginx(self) -> None:
        conf = render(
            (DEPLOY / "nginx" / "chat.conf").read_text(),
            [
                ("server 127.0.0.1:8001", f"server 127.0.0.1:{self.web_ports[0]}"),
                ("server 127.0.0.1:8002", f"server 127.0.0.1:{self.web_ports[1]}"),
                ("    listen [::]:80;\n", ""),
                ("    listen [::]:443 ssl http2;\n", ""),
                ("listen 80;", f"listen 127.0.0.1:{self.http_port};"),
                ("listen 443 ssl http2;", f"listen 127.0.0.1:{self.https_port} ssl http2;"),
                ("/etc/letsencrypt/live/chat.example.com/fullchain.pem", str(self.cert)),
                ("/etc/letsencrypt/live/chat.example.com/privkey.pem", str(self.key)),
                ("/srv/chat/staticfiles/", str(self.tmp / "static") + "/"),
                ("chat.example.com", HOST),
            ],
        )
        prefix = self.tmp / "nginx"
        prefix.mkdir()
        (prefix / "chat.conf").write_text(conf)
        user = "user root;\n" if os.geteuid() == 0 else ""  # the workers read the test's private tmp folder
        (prefix / "nginx.conf").write_text(
            f"{user}worker_processes 1;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log;\ndaemon off;\n"
            "events { worker_connections 256; }\n"
            "http {\n  include /etc/nginx/mime.types;\n"
            f"  access_log {prefix}/access.log;\n"
            + "".join(
                f"  {kind}_temp_path {prefix}/{kind};\n"
                for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
            )
            + f"  include {prefix}/chat.conf;\n}}\n"
        )
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        test = subprocess.run(
            [nginx, "-t", "-p", str(prefix), "-c", str(prefix / "nginx.conf")], capture_output=True, text=True
        )
        assert test.returncode == 0, test.stderr
        process, log = self.spawn([nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf")], "nginx")
        wait_port(self.https_port, process, prefix / "error.log")

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.origin, verify=self.tls, timeout=30, follow_redirects=False)

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()


def nginx_available() -> str | None:
    return None if shutil.which("nginx") or Path("/usr/sbin/nginx").exists() else "nginx is not installed"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployment, dict]]:
    servers.require(nginx_available())
    servers.require(servers.postgres_available())
    tmp = tmp_path_factory.mktemp("deploy")
    redis = OwnRedis(tmp)
    redis.start()
    database_url = servers.create_postgres_database()
    site = Deployment(tmp)
    try:
        site.environment(database_url, redis.url)
        site.run_setup()
        site.start_site()
        site.start_nginx()
        seeded = json.loads(
            subprocess.run(
                [sys.executable, "manage.py", "shell", "-c", SEED],
                cwd=ROOT,
                env=site.env,
                check=True,
                capture_output=True,
                text=True,
                timeout=120,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        yield site, seeded
    finally:
        site.stop()
        redis.kill()
        servers.drop_postgres_database(database_url)


def sign_in(site: Deployment, username: str) -> tuple[httpx.Client, str]:
    client = site.client()
    page = client.get("/login/")
    assert page.status_code == 200
    assert "max-age=31536000" in page.headers["strict-transport-security"]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    done = client.post(
        "/login/",
        data={"username": username, "password": username + "-secret-pw", "csrfmiddlewaretoken": token},
        headers={"Origin": site.origin, "Referer": site.origin + "/login/"},
    )
    assert done.status_code == 302, done.text[:500]
    cookie = done.headers.get_list("set-cookie")
    assert any(c.startswith("sessionid=") and "Secure" in c for c in cookie), cookie
    return client, f"sessionid={client.cookies['sessionid']}"


async def member(site: Deployment, cookie: str) -> Any:
    import websockets

    socket_ = await websockets.connect(
        f"wss://{HOST}:{site.https_port}/ws/rooms/lab/",
        additional_headers={"Cookie": cookie},
        origin=site.origin,  # type: ignore[arg-type]
        ssl=site.tls,
    )
    events: list[dict] = []

    async def until(kind: str) -> dict:
        async with asyncio.timeout(30):
            while True:
                event = json.loads(await socket_.recv())
                events.append(event)
                if event["type"] == kind:
                    return event

    await until("room.joined")
    return socket_, events, until


def test_plain_http_is_sent_to_https(deployment) -> None:
    site, _ = deployment
    response = httpx.get(f"http://127.0.0.1:{site.http_port}/rooms/lab/", headers={"Host": HOST})
    assert response.status_code == 301
    assert response.headers["location"] == f"https://{HOST}/rooms/lab/"


async def test_a_room_streams_through_the_proxy_to_members_on_both_processes(deployment) -> None:
    site, seeded = deployment
    alice_http, alice_cookie = sign_in(site, "alice")
    _bob_http, bob_cookie = sign_in(site, "bob")
    page = alice_http.get("/rooms/lab/")
    assert page.status_code == 200 and "Lab" in page.text

    alice, alice_events, alice_until = await member(site, alice_cookie)
    bob, bob_events, bob_until = await member(site, bob_cookie)
    # nginx sent the two sockets to different Daphne processes (one open socket in each).
    metrics = alice_http.get("/metrics")
    assert metrics.status_code == 200, metrics.text[:300]
    per_process = [
        float(line.rsplit(" ", 1)[1]) for line in metrics.text.splitlines() if line.startswith("chat_open_sockets{")
    ]
    assert sorted(v for v in per_process if v) == [1.0, 1.0], metrics.text

    await alice.send(
        json.dumps(
            {
                "type": "message.send",
                "conversation_id": seeded["conversation"],
                "content": "What do sea otters use as tools?",
            }
        )
    )
    done = await alice_until("assistant.done")
    await bob_until("assistant.done")
    final = done["message"]
    assert final["status"] == "complete" and "rocks" in final["content"]
    for events in (alice_events, bob_events):
        deltas = [e for e in events if e["type"] == "assistant.delta" and e["message_id"] == final["id"]]
        assert len(deltas) >= 2  # streamed in pieces, not delivered whole
        assert "".join(e["text"] for e in deltas) == final["content"]
    await alice.close()
    await bob.close()


def test_static_files_come_from_nginx(deployment) -> None:
    site, _ = deployment
    with site.client() as client:
        page = client.get("/login/")
        paths = re.findall(r'(/static/[^"\']+)', page.text)
        assert paths
        response = client.get(paths[0])
    assert response.status_code == 200
    # nginx's /static/ location (expires + add_header), not whitenoise behind it (one 10-year header).
    assert response.headers.get_list("cache-control") == ["max-age=31536000", "public, immutable"]


def test_an_oversized_upload_is_refused_by_the_proxy_and_a_normal_one_processed_by_the_worker(deployment) -> None:
    site, seeded = deployment
    headers = {"Api-Key": seeded["api_key"], "X-Pinecone-Api-Version": "2026-04"}
    with site.client() as client:
        too_big = client.post(
            "/assistant/files/handbook", headers=headers, files={"file": ("big.txt", b"x" * 12_000_000)}
        )
        assert too_big.status_code == 413
        assert "nginx" in too_big.text  # refused before Daphne read it
        accepted = client.post(
            "/assistant/files/handbook",
            headers=headers,
            files={"file": ("bees.txt", b"Bees dance to tell the hive where flowers are.")},
        )
        assert accepted.status_code == 202, accepted.text
        operation = accepted.json()
        deadline = time.monotonic() + 60
        while operation["status"] == "Processing" and time.monotonic() < deadline:
            time.sleep(0.2)
            operation = client.get(f"/assistant/operations/handbook/{operation['id']}", headers=headers).json()
    assert operation["status"] == "Completed", (operation, site.worker_log.read_text()[-2000:])
