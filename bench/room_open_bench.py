"""Room page in Chromium: how long a conversation of 5,000 messages takes to open, and the longest main-thread task
while a 1,000-token answer streams into it at 100 tokens/s; this tree against a baseline checkout, in one run.

Each tree (this worktree, and the baseline commit checked out with `git worktree add`, removed afterwards) gets
its own SQLite database seeded identically: a member, a room whose model is a local OpenAI-compatible upstream
(`local_upstream.py`, its own process, tokens at a fixed rate, a blank line every 40 tokens so the answer has
Markdown blocks), and one conversation of `--messages` messages (questions and answers of ~300 characters of
Markdown). Daphne serves each tree in turn; the system Chromium (headless, through Playwright) signs in and:

- open: loads the conversation `--runs` times after one warm-up load; figure = the navigation's `loadEventEnd`
  (the HTML, CSS and the deferred room script have run, so the page is at the newest message), median and max;
  also the DOM size and the longest task during the load;
- stream: asks a question and waits for the whole answer (`--tokens` at `--rate`), `--stream-runs` times; the
  page's PerformanceObserver('longtask') counts tasks over 50 ms, and a Chromium trace gives the longest task of
  the page's main thread (`RunTask` events) whatever its length.

    .venv/bin/python bench/room_open_bench.py                    # baseline: `git -C /work/main rev-parse HEAD`
    .venv/bin/python bench/room_open_bench.py --baseline <commit> --runs 7
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from local_upstream import free_port, upstream_process  # noqa: E402

SEED = """
import json
from django.contrib.auth import get_user_model
from django.db import transaction
from assistant_chat.models import Assistant, Conversation, Message, ModelEndpoint, Room
User = get_user_model()
with transaction.atomic():
    ModelEndpoint.objects.create(model_id="bench-upstream", base_url="{upstream}", upstream_model="bench-upstream")
    reader = User.objects.create_user("reader", password="reader-pw-1")
    assistant = Assistant.objects.create(name="bench")
    room = Room.objects.create(name="Bench", slug="bench", assistant=assistant, model="bench-upstream")
    room.members.set([reader])
    conversation = Conversation.objects.create(room=room, title="Long", created_by=reader)
    body = ("Sea otters crack shellfish with rocks they keep under the forelimb, **float** on their backs and "
            "groom their dense fur. `code` and a [link](https://example.org) too; " * 2)
    rows = []
    for i in range({messages}):
        user = i % 2 == 0
        rows.append(Message(conversation=conversation, role="user" if user else "assistant",
                            author=reader if user else None, status="complete", model="" if user else "bench-upstream",
                            content=("Question %d: " % i if user else "Answer %d: " % i) + body))
    Message.objects.bulk_create(rows, batch_size=500)
print(json.dumps({{"conversation": conversation.pk}}))
"""

# Set before any page script: long tasks (over 50 ms) as the page sees them.
OBSERVE = """
window.__longtasks = [];
try {
  new PerformanceObserver((list) => { for (const e of list.getEntries()) window.__longtasks.push(e.duration); })
    .observe({ type: "longtask", buffered: true });
} catch (err) { window.__longtasks = null; }
"""


def token(index: int) -> str:
    return "\n\n" if index % 40 == 39 else f"word{index} "


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed in {cwd}:\n{done.stderr[-3000:]}")
    return done.stdout


class Site:
    """One tree served by Daphne on its own seeded SQLite database."""

    def __init__(self, tree: Path, tmp: Path, upstream: str, messages: int) -> None:
        self.tree = tree
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "CHAT_VAR_DIR": str(tmp),
            "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
            "DJANGO_SECRET_KEY": "room-open-bench",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "STATIC_MANIFEST": "false",
            "WHITENOISE_USE_FINDERS": "true",
            "LOG_LEVEL": "WARNING",
            "JOBS_MODE": "worker",
            "CHAT_RATE_LIMIT_MESSAGES": "100000",
            "METRICS_DIR": str(tmp / "metrics"),
        }
        for name in ("REDIS_URL", "PROMETHEUS_MULTIPROC_DIR"):
            self.env.pop(name, None)
        python = sys.executable
        run([python, "manage.py", "migrate", "-v0"], tree, self.env)
        out = run(
            [python, "manage.py", "shell", "-c", SEED.format(upstream=upstream, messages=messages)], tree, self.env
        )
        self.conversation = json.loads(out.strip().splitlines()[-1])["conversation"]
        self.log = (tmp / "daphne.log").open("w")
        self.process = subprocess.Popen(
            [python, "-m", "chatsite.server", "-b", "127.0.0.1", "-p", str(self.port), "chatsite.asgi:application"],
            cwd=tree,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        for _ in range(300):
            try:
                urllib.request.urlopen(self.url + "/login/", timeout=1).read()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"Daphne did not start for {tree}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def longest_task_ms(trace: bytes) -> float:
    """The longest `RunTask` on a renderer main thread in a Chromium trace, in ms."""
    return max(main_thread_tasks(trace), default=0.0)


def main_thread_tasks(trace: bytes) -> list[float]:
    """Every `RunTask` on a renderer main thread in a Chromium trace, in ms."""
    events = json.loads(trace)
    events = events["traceEvents"] if isinstance(events, dict) else events
    main_threads = {
        (e["pid"], e["tid"])
        for e in events
        if e.get("name") == "thread_name" and e.get("args", {}).get("name") == "CrRendererMain"
    }
    durations = [
        e.get("dur", 0) / 1000
        for e in events
        if e.get("name") == "RunTask" and e.get("ph") == "X" and (e.get("pid"), e.get("tid")) in main_threads
    ]
    return durations


def measure(browser: Any, site: Site, args: argparse.Namespace) -> dict[str, Any]:
    context = browser.new_context(base_url=site.url, viewport={"width": 1280, "height": 800})
    context.add_init_script(OBSERVE)
    page = context.new_page()
    page.goto("/login/?next=/")
    page.fill("#id_username", "reader")
    page.fill("#id_password", "reader-pw-1")
    page.click("button[type=submit]")
    page.wait_for_url(f"{site.url}/")
    path = f"/rooms/bench/?c={site.conversation}"
    opens: list[float] = []
    open_tasks: list[float] = []
    nodes = 0
    for attempt in range(args.runs + 1):
        browser.start_tracing(page=page, categories=["devtools.timeline", "disabled-by-default-devtools.timeline"])
        page.goto(path, wait_until="load")
        timing = page.evaluate("() => performance.getEntriesByType('navigation')[0].toJSON()")
        trace = browser.stop_tracing()
        if attempt == 0:
            continue  # warm-up: caches, the first compile of the page's script
        opens.append(timing["loadEventEnd"] - timing["startTime"])
        if os.environ.get("BENCH_TOP_TASKS"):
            print(site.tree.name, "top tasks while opening (ms):", sorted(main_thread_tasks(trace))[-5:], flush=True)
        open_tasks.append(longest_task_ms(trace))
        nodes = page.evaluate("() => document.getElementsByTagName('*').length")
    page.wait_for_selector("#connection:has-text('Connected')")
    streams: list[dict[str, Any]] = []
    for _ in range(args.stream_runs):
        page.evaluate("() => { window.__longtasks = window.__longtasks && []; }")
        before = page.evaluate(
            "() => { const a = [...document.querySelectorAll('li.message.assistant')].pop(); return a ? Number(a.dataset.id) : 0; }"
        )
        browser.start_tracing(page=page, categories=["devtools.timeline", "disabled-by-default-devtools.timeline"])
        started = time.perf_counter()
        page.fill("#composer-input", "Tell me about sea otters.")
        page.press("#composer-input", "Enter")
        page.wait_for_function(
            "(before) => { const a = [...document.querySelectorAll('li.message.assistant')].pop();"
            " return a && Number(a.dataset.id) > before && a.dataset.status === 'complete'; }",
            arg=before,
            timeout=120_000,
            polling=250,
        )
        wall = time.perf_counter() - started
        trace = browser.stop_tracing()
        if os.environ.get("BENCH_TOP_TASKS"):
            print(site.tree.name, "top tasks while streaming (ms):", sorted(main_thread_tasks(trace))[-8:], flush=True)
        observed = page.evaluate("() => window.__longtasks")
        streams.append(
            {
                "wall_s": round(wall, 2),
                "longest_task_ms": round(longest_task_ms(trace), 1),
                "longtasks_over_50ms": None if observed is None else len(observed),
                "longest_longtask_ms": None if not observed else round(max(observed), 1),
            }
        )
    context.close()
    return {
        "open_ms_median": round(statistics.median(opens), 1),
        "open_ms_max": round(max(opens), 1),
        "open_longest_task_ms": round(max(open_tasks), 1),
        "dom_elements": nodes,
        "streams": streams,
        "stream_longest_task_ms": max(s["longest_task_ms"] for s in streams),
        "stream_longtasks_over_50ms": sum(s["longtasks_over_50ms"] or 0 for s in streams),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", help="commit to compare with (default: HEAD of /work/main)")
    parser.add_argument("--main-repo", default="/work/main")
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--stream-runs", type=int, default=2)
    args = parser.parse_args()
    baseline = (
        args.baseline or subprocess.check_output(["git", "-C", args.main_repo, "rev-parse", "HEAD"], text=True).strip()
    )
    head = subprocess.check_output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], text=True).strip()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        sys.exit("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="room-open-bench-"))
    baseline_tree = tmp / "baseline"
    run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(baseline_tree), baseline], ROOT, dict(os.environ))
    up_port = free_port()
    upstream = upstream_process(up_port, args.tokens, args.rate, token)
    results: dict[str, Any] = {}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-background-networking"]
            )
            for name, tree in (("baseline", baseline_tree), ("this tree", ROOT)):
                data = tmp / ("data-" + name.replace(" ", "-"))
                data.mkdir()
                site = Site(tree, data, f"http://127.0.0.1:{up_port}/v1", args.messages)
                try:
                    results[name] = measure(browser, site, args)
                finally:
                    site.stop()
                print(name, json.dumps(results[name]), flush=True)
            browser.close()
    finally:
        upstream.kill()
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(baseline_tree)], check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(
        f"messages={args.messages} tokens={args.tokens} rate={args.rate}/s runs={args.runs} stream_runs={args.stream_runs}"
    )
    print(f"baseline {baseline[:7]}, this tree {head} (+ uncommitted changes if any)")
    print(
        "| page | open, median (max) | longest task while opening | DOM elements | longest task while streaming | tasks > 50 ms while streaming |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for name, r in results.items():
        print(
            f"| {name} | {r['open_ms_median']:.0f} ms ({r['open_ms_max']:.0f}) | {r['open_longest_task_ms']:.0f} ms | "
            f"{r['dom_elements']} | {r['stream_longest_task_ms']:.0f} ms | {r['stream_longtasks_over_50ms']} |"
        )


if __name__ == "__main__":
    main()
