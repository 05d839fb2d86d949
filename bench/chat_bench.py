"""Chat pipeline overhead: what this server adds to time-to-first-token and total time, against the same upstream
called directly, in one run.

    .venv/bin/python bench/chat_bench.py [--requests 100] [--tokens 50] [--rate 100]

A local upstream speaks OpenAI's streaming Chat Completions and emits `--tokens` tokens at `--rate` tokens per
second, the first one at once. Direct: httpx streams from it. Through the server: a Daphne instance (its own SQLite
database) with the upstream registered as a model endpoint, streamed through `/assistant/chat/<name>/chat/completions`
with httpx. Two assistants: one with no files (retrieval finds nothing: the pipeline's own cost, retrieval
excluded) and one with the demo documents (retrieval included). Retrieval alone is timed in-process on the
demo assistant. Requests run one at a time; p50 and p99 over `--requests`. "Last token to end" is what a stream
costs after its last token arrives (closing the upstream, the final chunk, ending the response).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from local_upstream import free_port, start_upstream

ROOT = Path(__file__).resolve().parents[1]
QUESTION = "How do honeybees tell each other where the flowers are?"


async def time_stream(
    client: httpx.AsyncClient, url: str, body: dict, headers: dict, last_token: bytes
) -> tuple[float, float, float]:
    """Time to the first token, total time, and the tail: from the last token's arrival to the end of the stream."""
    started = time.perf_counter()
    first = last = None
    async with client.stream("POST", url, json=body, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        async for raw in response.aiter_bytes():
            if first is None and b"tok0 " in raw:
                first = time.perf_counter() - started
            if last_token in raw:
                last = time.perf_counter()
    ended = time.perf_counter()
    return first or float("nan"), ended - started, ended - last if last else float("nan")


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"{statistics.median(values) * 1000:8.2f} | {p99 * 1000:8.2f}"


async def run(args: argparse.Namespace) -> None:
    load_before = os.getloadavg()  # the machine is shared: a loaded one makes every path slower
    up_port, site_port, django_port = free_port(), free_port(), free_port()
    upstream, _emits = await start_upstream(up_port, args.tokens, args.rate, lambda index: f"tok{index} ")
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "CHAT_VAR_DIR": tmp,
            "DJANGO_SECRET_KEY": "bench",
            "STATIC_MANIFEST": "false",
            "LOG_LEVEL": "WARNING",
        }
        env.pop("DATABASE_URL", None)
        manage = [sys.executable, "manage.py"]
        subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        subprocess.run([*manage, "setup_demo", "--no-admin"], cwd=ROOT, env=env, check=True, capture_output=True)
        key = subprocess.run(
            [*manage, "create_api_key", "--quiet"], cwd=ROOT, env=env, check=True, capture_output=True, text=True
        ).stdout.strip()
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
        )
        retrieval = subprocess.run(
            [
                *manage,
                "shell",
                "-c",
                "import time, statistics, json\n"
                "from assistant_chat.models import Assistant\n"
                "from assistant_chat.knowledge.retrieval import retrieve\n"
                "a = Assistant.objects.get(name='demo'); times = []\n"
                f"for _ in range({args.requests}):\n"
                f"    t = time.perf_counter(); retrieve(assistant=a, query={QUESTION!r}); times.append(time.perf_counter() - t)\n"
                "print(json.dumps(times))",
            ],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        retrieval_times = json.loads(retrieval.strip().splitlines()[-1])
        # The site as deployed, and (for comparison in the same run) plain Django's handler for every request,
        # i.e. without the lean chat path of api/asgi_chat.py.
        sites = [
            subprocess.Popen(
                [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), f"chatsite.asgi:{app}"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for port, app in ((site_port, "application"), (django_port, "django_asgi_app"))
        ]
        try:
            async with httpx.AsyncClient(timeout=60) as client:
                for port in (site_port, django_port):
                    for _ in range(100):
                        try:
                            await client.get(f"http://127.0.0.1:{port}/login/")
                            break
                        except httpx.HTTPError:
                            await asyncio.sleep(0.1)
                messages = [{"role": "user", "content": QUESTION}]
                direct_url = f"http://127.0.0.1:{up_port}/v1/chat/completions"
                results: dict[str, tuple[list[float], list[float]]] = {}
                cases = {
                    "direct to upstream (baseline)": (direct_url, {}),
                    "through server, assistant with no files": (
                        f"http://127.0.0.1:{site_port}/assistant/chat/empty/chat/completions",
                        {"Api-Key": key},
                    ),
                    "through server, demo assistant (retrieval included)": (
                        f"http://127.0.0.1:{site_port}/assistant/chat/demo/chat/completions",
                        {"Api-Key": key},
                    ),
                    "through Django's handler (no lean chat path), assistant with no files": (
                        f"http://127.0.0.1:{django_port}/assistant/chat/empty/chat/completions",
                        {"Api-Key": key},
                    ),
                }
                for label, (url, headers) in cases.items():
                    body = {
                        "model": "bench-upstream" if label.startswith("direct") else "bench",
                        "messages": messages,
                        "stream": True,
                    }
                    last_token = f"tok{args.tokens - 1} ".encode()
                    await time_stream(client, url, body, headers, last_token)  # warm up
                    firsts, totals, tails = [], [], []
                    for _ in range(args.requests):
                        first, total, tail = await time_stream(client, url, body, headers, last_token)
                        firsts.append(first)
                        totals.append(total)
                        tails.append(tail)
                    results[label] = (firsts, totals, tails)
        finally:
            for site in sites:
                site.terminate()
                site.wait()
            upstream.close()
    load_after = os.getloadavg()
    base_first = statistics.median(results["direct to upstream (baseline)"][0])
    base_total = statistics.median(results["direct to upstream (baseline)"][1])
    print(f"\nUpstream: {args.tokens} tokens at {args.rate:g} tokens/s; {args.requests} sequential requests per row.")
    print(f"Load average (1 min) at start {load_before[0]:.2f}, at end {load_after[0]:.2f}.\n")
    print(
        "| path | TTFT p50 ms | TTFT p99 ms | total p50 ms | total p99 ms | last token to end p50 ms "
        "| added TTFT p50 ms | added total p50 ms |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, (firsts, totals, tails) in results.items():
        ttft, total = summary(firsts).split("|"), summary(totals).split("|")
        added_first = (statistics.median(firsts) - base_first) * 1000
        added_total = (statistics.median(totals) - base_total) * 1000
        print(
            f"| {label} | {ttft[0].strip()} | {ttft[1].strip()} | {total[0].strip()} | {total[1].strip()} "
            f"| {statistics.median(tails) * 1000:.2f} | {added_first:.2f} | {added_total:.2f} |"
        )
    print(
        f"\nRetrieval alone (demo assistant, in-process): p50 {summary(retrieval_times).split('|')[0].strip()} ms, "
        f"p99 {summary(retrieval_times).split('|')[1].strip()} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=50)
    parser.add_argument("--rate", type=float, default=100.0)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
