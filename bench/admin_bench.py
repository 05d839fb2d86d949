"""Admin review benchmark: the conversation list, its search and the review pages at 100k messages, on SQLite.

    .venv/bin/python bench/admin_bench.py                        # 100k messages, 40 requests per page
    .venv/bin/python bench/admin_bench.py --messages 10000 --requests 20
    .venv/bin/python bench/admin_bench.py --database-url postgresql://postgres@127.0.0.1:5432/admin_bench
    ADMIN_BENCH_PROFILE=7 .venv/bin/python bench/admin_bench.py --database-url ...   # one page's queries + profile

Seeds a fresh database (a temporary SQLite file unless --database-url is given; that database is migrated and
filled, so give it an empty one) with 10 rooms, 60 members and conversations of 20 messages (questions and
answers of Zipf-distributed pseudo-words, spread over 90 days, with citations and usage) through bulk_create,
so the search index is filled by its triggers (SQLite) or generated column (PostgreSQL) row by row as in
production. Then Django's test Client, logged in as a superuser, requests each page N times and reports p50/p99.

Baselines in the same run: the search as Django's admin does it with `search_fields` on message content
(`LIKE %word%` over every message, which is what the index saves us from), and a naive list that annotates each
conversation with its message count and counts the full result (what `show_full_result_count=False`, the
per-page aggregate and the index-friendly ordering avoid).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from knowledge_bench import TextMaker, percentile  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=40, help="requests per page")
    parser.add_argument("--database-url", default="", help="an empty database to fill, or one this script filled")
    parser.add_argument("--keep", action="store_true", help="keep the temporary SQLite database")
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="admin-bench-")
    os.environ["DATABASE_URL"] = args.database_url or f"sqlite:///{workdir}/db.sqlite3"
    os.environ["CHAT_VAR_DIR"] = workdir
    os.environ["DJANGO_SETTINGS_MODULE"] = "chatsite.settings"
    os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver,127.0.0.1")
    import django

    django.setup()
    from django.conf import settings

    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.ALLOWED_HOSTS = ["testserver"]
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    engine = connection.vendor
    maker = TextMaker(seed=11)
    from assistant_chat.models import Message

    if not Message.objects.exists():
        took = seed(maker, args.messages)["seconds"]
        filled = "triggers" if engine == "sqlite" else "the generated column"
        print(f"{engine}: seeded {args.messages:,} messages in {took:.1f} s (bulk_create, index filled by {filled})")
    seeded = describe(maker)
    print(f"{engine}: {seeded['messages']:,} messages in {seeded['conversations']:,} conversations")

    from django.contrib.auth import get_user_model
    from django.test import Client

    boss = get_user_model().objects.filter(username="bench-boss").first()
    boss = boss or get_user_model().objects.create_superuser("bench-boss", "", "x")
    client = Client()
    client.force_login(boss)

    rare, common = seeded["rare"], seeded["common"]
    conversation_id, room_id = seeded["conversation_id"], seeded["room_id"]
    member_id = seeded["member_id"]
    LIST = "/admin/assistant_chat/conversation/"  # noqa: N806
    pages: list[tuple[str, str, dict]] = [
        ("conversation list", "/admin/assistant_chat/conversation/", {}),
        ("conversation list, last page", "/admin/assistant_chat/conversation/", {"p": str(seeded["last_page"])}),
        ("list filtered by room", "/admin/assistant_chat/conversation/", {"room": str(room_id)}),
        ("list filtered by member", "/admin/assistant_chat/conversation/", {"member": str(member_id)}),
        ("list: has failed answers", "/admin/assistant_chat/conversation/", {"answers": "failed"}),
        ("list filtered by model", "/admin/assistant_chat/conversation/", {"model": "gpt-4.1"}),
        (f"search, rare word ({seeded['rare_hits']} messages)", "/admin/assistant_chat/conversation/", {"q": rare}),
        (f"search, frequent word ({seeded['frequent_hits']:,} messages)", LIST, {"q": seeded["frequent"]}),
        (f"search, very common word ({seeded['common_hits']:,} messages)", LIST, {"q": common}),
        ("search, two words", "/admin/assistant_chat/conversation/", {"q": f"{common} {seeded['mid']}"}),
        ("conversation page (20 messages)", f"/admin/assistant_chat/conversation/{conversation_id}/change/", {}),
        ("usage report, last 30 days, by day and room", "/admin/assistant_chat/usage/", {}),
        ("export one conversation (Markdown)", f"/admin/assistant_chat/conversation/{conversation_id}/export.md", {}),
    ]
    try:
        if os.environ.get("ADMIN_BENCH_PROFILE"):
            profile(client, pages[int(os.environ["ADMIN_BENCH_PROFILE"])])
            return
        run_pages(client, pages, seeded, engine, args.requests)
    finally:
        if args.keep and not args.database_url:
            print(f"kept: --database-url sqlite:///{workdir}/db.sqlite3")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def run_pages(client, pages: list, seeded: dict, engine: str, requests: int) -> None:  # type: ignore[no-untyped-def]
    rare, common = seeded["rare"], seeded["common"]
    rows = []
    for label, url, params in pages:
        rows.append(measure(client, label, url, params, requests))

    # Baselines: the same pages the naive way, measured in this run.
    from assistant_chat.models import Message
    from assistant_chat.review import admin as admin_rooms
    from assistant_chat.review import search as history_search

    original_search = admin_rooms.ConversationAdmin.get_search_results
    original_snippets = history_search.snippets_by_conversation

    def like_search(self, request, queryset, search_term):  # type: ignore[no-untyped-def]
        term = search_term.strip()
        if not term:
            return queryset, False
        matching = Message.objects.filter(content__icontains=term).values("conversation_id")
        return queryset.filter(title__icontains=term) | queryset.filter(pk__in=matching), False

    def like_snippets(*, query, conversation_ids):  # type: ignore[no-untyped-def]
        found = {}
        for message in Message.objects.filter(conversation_id__in=conversation_ids, content__icontains=query).order_by(
            "id"
        ):
            found.setdefault(
                message.conversation_id, history_search.MessageHit(message.pk, message.conversation_id, "")
            )
        return found

    admin_rooms.ConversationAdmin.get_search_results = like_search  # type: ignore[method-assign]
    history_search.snippets_by_conversation = like_snippets  # type: ignore[assignment]
    admin_rooms.history_search.snippets_by_conversation = like_snippets  # type: ignore[attr-defined]
    base_requests = max(5, requests // 4)
    rows.append(measure(client, "baseline: LIKE search, rare word", "/admin/assistant_chat/conversation/", {"q": rare}, base_requests))  # fmt: skip
    rows.append(measure(client, "baseline: LIKE search, frequent word", "/admin/assistant_chat/conversation/", {"q": seeded["frequent"]}, base_requests))  # fmt: skip
    rows.append(measure(client, "baseline: LIKE search, very common word", "/admin/assistant_chat/conversation/", {"q": common}, base_requests))  # fmt: skip
    admin_rooms.ConversationAdmin.get_search_results = original_search  # type: ignore[method-assign]
    history_search.snippets_by_conversation = original_snippets  # type: ignore[assignment]

    naive = naive_admin()
    rows.append(measure(client, "baseline: naive list (count annotation, full count)", naive, {}, base_requests))
    print()
    print(f"| page ({engine}, {seeded['messages']:,} messages) | p50 ms | p99 ms | requests |")
    print("| --- | ---: | ---: | ---: |")
    for label, p50, p99, n in rows:
        print(f"| {label} | {p50:.1f} | {p99:.1f} | {n} |")


def profile(client, page) -> None:  # type: ignore[no-untyped-def]
    """Each query of one page with its time (ADMIN_BENCH_PROFILE=<index of the page>)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    label, url, params = page
    client.get(url, params)
    started = time.perf_counter()
    with CaptureQueriesContext(connection) as captured:
        client.get(url, params)
    total = (time.perf_counter() - started) * 1000
    print(f"{label}: {total:.1f} ms, {len(captured.captured_queries)} queries")
    for query in sorted(captured.captured_queries, key=lambda q: -float(q["time"]))[:8]:
        print(f"  {float(query['time']) * 1000:7.1f} ms  {query['sql'][:300]}")
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.runcall(client.get, url, params)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(20)


def measure(client, label: str, url: str, params: dict, requests: int) -> tuple[str, float, float, int]:  # type: ignore[no-untyped-def]
    response = client.get(url, params)  # warm caches, and check the page works
    assert response.status_code == 200, (label, response.status_code, response.content[:500])
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(url, params)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    p50, p99 = statistics.median(times), percentile(times, 99)
    print(f"  {label}: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    return label, p50, p99, requests


def naive_admin() -> str:
    """A second admin site with the conversation list as a first attempt would write it."""
    from django.contrib import admin
    from django.db.models import Count
    from django.urls import clear_url_caches, path

    from assistant_chat.models import Conversation

    site = admin.AdminSite(name="naive")

    class NaiveConversationAdmin(admin.ModelAdmin):
        list_display = ("title", "room", "created_by", "created_at", "messages")
        list_filter = ("room",)
        ordering = ("-updated_at", "-id")
        list_per_page = 50

        def get_queryset(self, request):  # type: ignore[no-untyped-def]
            return super().get_queryset(request).annotate(n=Count("messages"))

        @admin.display(description="messages")
        def messages(self, conversation):  # type: ignore[no-untyped-def]
            return conversation.n

    site.register(Conversation, NaiveConversationAdmin)
    from chatsite import urls

    urls.urlpatterns.insert(0, path("naive-admin/", site.urls))
    clear_url_caches()
    return "/naive-admin/assistant_chat/conversation/"


def seed(maker: TextMaker, total_messages: int) -> dict:
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django.db.models import Max, Min
    from django.utils import timezone

    from assistant_chat.models import Assistant, Conversation, Message, Room

    rng = random.Random(5)
    started = time.perf_counter()
    users = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"member{i}", first_name=f"Member {i}") for i in range(60)]
    )
    assistant = Assistant.objects.create(name="bench")
    rooms = [Room.objects.create(name=f"Room {i}", slug=f"room-{i}", assistant=assistant) for i in range(10)]
    for index, room in enumerate(rooms):
        room.members.set(users[index * 6 : index * 6 + 12])
    per_conversation = 20
    count = max(1, total_messages // per_conversation)
    models = ["offline", "gpt-4o", "gpt-4.1", "claude-3-7-sonnet"]
    now = timezone.now()
    span = timedelta(days=90).total_seconds()
    rare = RARE
    with transaction.atomic():
        conversations = Conversation.objects.bulk_create(
            [
                Conversation(room=rooms[i % len(rooms)], title=" ".join(maker.sample(4)).capitalize(), created_by=users[i % 60])
                for i in range(count)
            ]
        )  # fmt: skip
        batch: list[Message] = []
        for c_index, conversation in enumerate(conversations):
            for turn in range(per_conversation // 2):
                asker = users[rng.randrange(60)]
                question = maker.sentence() + " " + maker.sentence()
                if rng.random() < 0.0005:
                    question += f" {rare}"
                batch.append(Message(conversation=conversation, role="user", author=asker, content=question))
                status = "failed" if rng.random() < 0.01 else "complete"
                batch.append(
                    Message(
                        conversation=conversation,
                        role="assistant",
                        content=maker.paragraph(60) + " [1, pp. 2]",
                        citations=[
                            {
                                "position": 10,
                                "references": [
                                    {"number": 1, "file_id": "f1", "file_name": "handbook.pdf", "pages": [2]}
                                ],
                            }
                        ],  # fmt: skip
                        status=status,
                        error="The model failed: upstream timeout" if status == "failed" else "",
                        model=models[(c_index + turn) % len(models)],
                        prompt_tokens=rng.randint(300, 2500),
                        completion_tokens=rng.randint(40, 400),
                        first_token_ms=rng.uniform(200, 900),
                        total_ms=rng.uniform(1500, 9000),
                    )
                )
            if len(batch) >= 5000:
                _insert(batch)
                batch = []
        if batch:
            _insert(batch)
        # Spread history over 90 days (auto_now_add stamped everything now); no content change, so no reindexing.
        first = Message.objects.order_by("id").values_list("id", flat=True).first() or 0
        last = Message.objects.order_by("-id").values_list("id", flat=True).first() or 0
        width = max(1, last - first)
        with connection.cursor() as cursor:
            for low in range(first, last + 1, 5000):
                ids = list(range(low, min(last + 1, low + 5000)))
                stamps = [(now - timedelta(seconds=span * (1 - (pk - first) / width)), pk) for pk in ids]
                cursor.executemany("UPDATE assistant_chat_message SET created_at = %s WHERE id = %s", stamps)
            cursor.execute(
                "UPDATE assistant_chat_message SET reply_to_id = id - 1, completed_at = created_at WHERE role = 'assistant'"
            )
        times = {
            row["conversation_id"]: (row["first"], row["last"])
            for row in Message.objects.values("conversation_id").annotate(
                first=Min("created_at"),
                last=Max("created_at"),
            )
        }
        with connection.cursor() as cursor:
            cursor.executemany(
                "UPDATE assistant_chat_conversation SET created_at = %s, updated_at = %s WHERE id = %s",
                [(first_at, last_at, pk) for pk, (first_at, last_at) in times.items()],
            )
    with connection.cursor() as cursor:
        # On PostgreSQL the seeding's updates leave a dead version of most rows, which autovacuum clears within a
        # minute or so in a live deployment; measuring before that would time the bulk load, not the history.
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")
    return {"seconds": time.perf_counter() - started}


RARE = "zyxquorrel"  # planted in a few messages, so a search has a handful of hits among 100k


def describe(maker: TextMaker) -> dict:
    """What the pages are measured with: words to search, a conversation, a room and a member."""
    from django.db import connection
    from django.db.models import Count

    from assistant_chat.models import Conversation, Message, Room
    from assistant_chat.review import search as history_search

    def hits(word: str) -> int:
        sql, params = history_search.matching_messages_sql(word) or ("FROM assistant_chat_message WHERE 1 = 0", [])
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) {sql}", params)
            return cursor.fetchone()[0]

    conversations = Conversation.objects.count()
    busiest = Message.objects.filter(role="user").values("author_id").annotate(n=Count("id")).order_by("-n").first()
    # words[0] is in nearly every message (like "the", which real searches drop as a stopword); words[15] is in
    # about a fifth of them, like a topic word in a busy team's history.
    common, mid, frequent = maker.words[0], maker.words[400], maker.words[15]
    return {
        "messages": Message.objects.count(),
        "conversations": conversations,
        "last_page": max(1, (conversations + 49) // 50),
        "rare": RARE,
        "rare_hits": hits(RARE),
        "common": common,
        "common_hits": hits(common),
        "mid": mid,
        "frequent": frequent,
        "frequent_hits": hits(frequent),
        "conversation_id": Conversation.objects.order_by("id").values_list("id", flat=True)[conversations // 2],
        "room_id": Room.objects.order_by("id").values_list("id", flat=True)[3],
        "member_id": busiest["author_id"] if busiest else None,
    }


def _insert(batch: list) -> None:
    from assistant_chat.models import Message

    Message.objects.bulk_create(batch, batch_size=1000)


if __name__ == "__main__":
    main()
