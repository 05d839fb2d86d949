"""Seeds a live server for the browser tests (run with `manage.py shell`): members, an assistant whose files
include hostile text, a room and a conversation. Prints the ids the test needs as JSON."""

import json

from django.contrib.auth import get_user_model

from assistant_chat import services
from assistant_chat.knowledge.demo_documents import write_pdf
from assistant_chat.models import Room

User = get_user_model()
alice = User.objects.create_user("alice", password="alice-pw-1")
bob = User.objects.create_user("bob", password="bob-pw-1")
carol = User.objects.create_user("carol", password="carol-pw-1")
assistant = services.assistant_create(name="handbook")
pdf = write_pdf(
    [
        "Field guide. This guide covers coastal mammals.",
        "Sea otters use rocks as tools to crack open shellfish while floating on their backs.",
        "Index and credits.",
    ]
)
otters, _op, future = services.file_upload(assistant=assistant, name="guide.pdf", data=pdf, metadata={"kind": "guide"})
future.result(60)
hostile = (
    "Shellfish safety notes. Otters crack shellfish <script>window.__pwned = 'file'</script> carefully. "
    "Shellfish shells are hard <img src=x onerror=\"window.__pwned = 'file-img'\"> and sharp. "
    "Read [the shellfish rules](javascript:window.__pwned='file-link') before diving."
)
hostile_file, _op, future = services.file_upload(
    assistant=assistant, name="hostile.md", data=hostile.encode(), metadata={"kind": "notes"}
)
future.result(60)
room = Room.objects.create(name="Lab", slug="lab", assistant=assistant)
room.members.set([alice, bob])
conversation = services.conversation_create(room=room, user=alice, title="Questions")
print(json.dumps({"conversation": conversation.pk, "guide": otters.file_id, "hostile": hostile_file.file_id}))
