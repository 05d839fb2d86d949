"""Seeds a live server for the room UX browser tests (run with `manage.py shell`): two members, a stranger and a
staff member; an assistant with a paged PDF and long notes (so answers stream for a few seconds); the room "lab";
"Questions" (alice's, empty) and "History" (bob's, 130 messages over three days, one with a code block).
Prints the ids the tests need as JSON."""

import json
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from assistant_chat import services
from assistant_chat.knowledge.demo_documents import write_pdf
from assistant_chat.models import Message, Room

User = get_user_model()
alice = User.objects.create_user("alice", password="alice-pw-1")
bob = User.objects.create_user("bob", password="bob-pw-1")
User.objects.create_user("carol", password="carol-pw-1")
User.objects.create_superuser("staff", password="staff-pw-1")
assistant = services.assistant_create(name="handbook")
pdf = write_pdf(
    [
        "Field guide. This guide covers coastal mammals.",
        "Sea otters use rocks as tools to crack open shellfish while floating on their backs.",
        "Index and credits.",
    ]
)
guide, _op, future = services.file_upload(assistant=assistant, name="guide.pdf", data=pdf, metadata={"kind": "guide"})
future.result(60)
notes = "\n\n".join(
    f"Otter notes {n}. Sea otters crack shellfish with rocks they keep in a pouch of loose skin under the forelimb; "
    f"they float on their backs, place the rock on the chest and strike the shellfish against it until the shell "
    f"breaks, then eat the meat and groom their dense fur for a long while before diving again (note {n})."
    for n in range(1, 7)
)
notes_file, _op, future = services.file_upload(
    assistant=assistant, name="otter-notes.md", data=notes.encode(), metadata={"kind": "notes"}
)
future.result(60)
room = Room.objects.create(name="Lab", slug="lab", assistant=assistant)
room.members.set([alice, bob])
questions = services.conversation_create(room=room, user=alice, title="Questions")
history = services.conversation_create(room=room, user=bob, title="History")

CODE = "Here is the script:\n\n```python\ndef crack(shell):\n    return shell.split('|')\n```\n"
now = timezone.now()
rows = []
for i in range(130):
    user_turn = i % 2 == 0
    content = (
        CODE if i == 124 else f"History message {i}: " + ("a question about otters." if user_turn else "an answer.")
    )
    rows.append(
        Message(
            conversation=history,
            role=Message.Role.USER if user_turn else Message.Role.ASSISTANT,
            author=(alice if i % 4 == 0 else bob) if user_turn else None,
            content=content,
            status=Message.Status.COMPLETE,
            model="" if user_turn else "offline",
        )
    )
saved = Message.objects.bulk_create(rows)
# Three days (2, 1 and 0 days ago), each message within its UTC day at any time of day the suite runs: the earlier
# days' at midday, today's in the seconds before now (minutes before now crossed midnight in a run at 02:05 UTC).
midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
for i, message in enumerate(sorted(saved, key=lambda m: m.pk)):
    days_ago = 2 - (i * 3) // 130
    if days_ago:
        stamp = midnight - timedelta(days=days_ago) + timedelta(hours=12, seconds=i)
    else:
        stamp = max(midnight, now - timedelta(seconds=130 - i))
    Message.objects.filter(pk=message.pk).update(created_at=stamp)
print(
    json.dumps(
        {
            "questions": questions.pk,
            "history": history.pk,
            "guide": guide.file_id,
            "notes": notes_file.file_id,
            "room": room.pk,
        }
    )
)
