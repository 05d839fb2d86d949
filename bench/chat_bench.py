"""Chat pipeline overhead: what this server adds to time-to-first-token and total time, against the same upstream
called directly, in one run.

    .venv/bin/python bench/chat_bench.py [--requests 100] [--tokens 50] [--rate 100]

A local upstream (a process of its own, as a model server is) speaks OpenAI's streaming Chat Completions and emits
`--tokens` tokens at `--rate` tokens per second, the first one at once. Direct: httpx streams from it. Through the
server: a Daphne instance (its own SQLite database) with the upstream registered as a model endpoint, streamed
through `/assistant/chat/<name>/chat/completions` with httpx, for two assistants: one with no files, and one with
the demo documents; the same through Django's own handler; and, for reference, through a bare Daphne + httpx
proxy (`bench/bare_proxy.py`), the least any proxy on this stack can add. Requests run one at a time, interleaved: every round times each path once, in a rotating
order, so a noisy stretch of the shared machine falls on all paths alike. p50 and p99 over `--requests` rounds.

"Added TTFT, retrieval excluded" is the target's measure: each request's time to first token minus the retrieval
time the server reports for that very request (its `Server-Timing` header), then the median, minus the direct
median. Retrieval is reported on its own, as the server timed it. "Last token to end" is what a stream costs after
its last token arrives (closing the upstream, the final chunk, ending the response).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from local_upstream import free_port, upstream_process

ROOT = Path(__file__).resolve().parents[1]
QUESTION = "How do honeybees tell each other where the flowers are?"
DIRECT = "direct to upstream (baseline)"
RETRIEVAL_TIMING = re.compile(r"(?:^|,)\s*retrieval;dur=([0-9.]+)")


def token(index: int) -> str:
    return f"tok{index} "


class Sample:
    """One streamed request: time to first token, total, tail after the last token, server-reported retrieval."""

    def __init__(self, first: float, total: float, tail: float, retrieval: float) -> None:
        self.first, self.total, self.tail, self.retrieval = first, total, tail, retrieval


async def time_stream(client: httpx.AsyncClient, url: str, body: dict, headers: dict, last_token: bytes) -> Sample:
    started = time.perf_counter()
    first = last = None
    async with client.stream("POST", url, json=body, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        timing = RETRIEVAL_TIMING.search(response.headers.get("server-timing", ""))
        async for raw in response.aiter_bytes():
            if first is None and b"tok0 " in raw:
                first = time.perf_counter() - started
            if last_token in raw:
                last = time.perf_counter()
    ended = time.perf_counter()
    return Sample(
        first=first if first is not None else float("nan"),
        total=ended - started,
        tail=ended - last if last is not None else float("nan"),
        retrieval=float(timing.group(1)) / 1000 if timing else 0.0,
    )


def p50(values: list[float]) -> float:
    return statistics.median(values) * 1000


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))] * 1000


def setup_site(env: dict[str, str], up_port: int) -> str:
    """Migrate, load the demo, add an assistant with no files and the upstream as model `bench`; return a key."""
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run([*manage, "setup_demo", "--no-admin"], cwd=ROOT, env=env, check=True, capture_output=True)
    subprocess.run(
        [
            *manage,
            "shell",
            "-c",
            "from assistant_chat.models import Assistant, ModelEndpoint; Assistant.objects.create(name='empty'); "
            f"ModelEndpoint.objects.create(model_id='bench', base_url='http://127.0.0.1:{up_port}/v1', "
            "upstream_model='bench-upstream')",
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    return subprocess.run(
        [*manage, "create_api_key", "--quiet"], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


async def run(args: argparse.Namespace) -> None:
    load_before = os.getloadavg()  # the machine is shared: a loaded one makes every path slower
    up_port, site_port, django_port, bare_port = free_port(), free_port(), free_port(), free_port()
    upstream = upstream_process(up_port, args.tokens, args.rate, token)
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "CHAT_VAR_DIR": tmp,
            "DJANGO_SECRET_KEY": "bench",
            "STATIC_MANIFEST": "false",
            "LOG_LEVEL": "WARNING",
            "BARE_PROXY_UPSTREAM": f"http://127.0.0.1:{up_port}/v1/chat/completions",
        }
        env.pop("DATABASE_URL", None)
        key = setup_site(env, up_port)
        # The site as deployed; for comparison in the same run, plain Django's handler for every request (i.e.
        # without the lean chat path of api/asgi_chat.py), and a bare Daphne + httpx proxy (bench/bare_proxy.py).
        sites = [
            subprocess.Popen(
                [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), app],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for port, app in (
                (site_port, "chatsite.asgi:application"),
                (django_port, "chatsite.asgi:django_asgi_app"),
                (bare_port, "bench.bare_proxy:application"),
            )
        ]
        try:
            async with httpx.AsyncClient(timeout=60) as client:
                for port in (site_port, django_port, bare_port):
                    for _ in range(100):
                        try:
                            await client.get(f"http://127.0.0.1:{port}/login/")
                            break
                        except httpx.HTTPError:
                            await asyncio.sleep(0.1)
                results = await measure(client, args, key, up_port, site_port, django_port, bare_port)
        finally:
            for site in sites:
                site.terminate()
                site.wait()
            upstream.terminate()
    report(args, results, load_before[0], os.getloadavg()[0])


async def measure(
    client: httpx.AsyncClient,
    args: argparse.Namespace,
    key: str,
    up_port: int,
    site_port: int,
    django_port: int,
    bare_port: int,
) -> dict[str, list[Sample]]:
    api = {"Api-Key": key}
    cases = {
        DIRECT: (f"http://127.0.0.1:{up_port}/v1/chat/completions", {}),
        "through server, assistant with no files": (
            f"http://127.0.0.1:{site_port}/assistant/chat/empty/chat/completions",
            api,
        ),
        "through server, demo assistant": (f"http://127.0.0.1:{site_port}/assistant/chat/demo/chat/completions", api),
        "through Django's handler (no lean chat path), assistant with no files": (
            f"http://127.0.0.1:{django_port}/assistant/chat/empty/chat/completions",
            api,
        ),
        "reference: a bare Daphne + httpx proxy (no Django, no database)": (f"http://127.0.0.1:{bare_port}/", {}),
    }
    messages = [{"role": "user", "content": QUESTION}]
    bodies = {
        label: {"model": "bench-upstream" if label == DIRECT else "bench", "messages": messages, "stream": True}
        for label in cases
    }
    last_token = token(args.tokens - 1).encode()
    for label, (url, headers) in cases.items():  # warm up: connections, caches, the upstream pool
        for _ in range(3):
            await time_stream(client, url, bodies[label], headers, last_token)
    results: dict[str, list[Sample]] = {label: [] for label in cases}
    labels = list(cases)
    for round_ in range(args.requests):
        shift = round_ % len(labels)
        for label in labels[shift:] + labels[:shift]:
            url, headers = cases[label]
            results[label].append(await time_stream(client, url, bodies[label], headers, last_token))
    return results


def report(args: argparse.Namespace, results: dict[str, list[Sample]], load_before: float, load_after: float) -> None:
    base_first = p50([s.first for s in results[DIRECT]])
    base_total = p50([s.total for s in results[DIRECT]])
    print(f"\nUpstream: {args.tokens} tokens at {args.rate:g} tokens/s; {args.requests} interleaved rounds.")
    print(f"Load average (1 min) at start {load_before:.2f}, at end {load_after:.2f}.\n")
    print(
        "| path | TTFT p50 ms | TTFT p99 ms | retrieval p50 ms (server) | added TTFT p50 ms, retrieval excluded "
        "| added TTFT p50 ms, retrieval included | total p50 ms | total p99 ms | added total p50 ms "
        "| last token to end p50 ms |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, samples in results.items():
        firsts = [s.first for s in samples]
        totals = [s.total for s in samples]
        excluded = p50([s.first - s.retrieval for s in samples]) - base_first
        print(
            f"| {label} | {p50(firsts):.2f} | {p99(firsts):.2f} | {p50([s.retrieval for s in samples]):.2f} "
            f"| {excluded:.2f} | {p50(firsts) - base_first:.2f} | {p50(totals):.2f} | {p99(totals):.2f} "
            f"| {p50(totals) - base_total:.2f} | {p50([s.tail for s in samples]):.2f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=50)
    parser.add_argument("--rate", type=float, default=100.0)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
