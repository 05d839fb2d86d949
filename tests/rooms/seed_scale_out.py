"""Seeds the scale-out test (run with `manage.py shell`): two members, a room, a conversation, and a signed-in
session for each member. Prints what the test needs as JSON."""

import json

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore

from assistant_chat import services
from assistant_chat.models import Room

User = get_user_model()
assistant = services.assistant_create(name="handbook")
text = " ".join(f"Sea otters use rocks as tools, fact {i}." for i in range(40))
services.file_upload(assistant=assistant, name="otters.txt", data=text.encode())[2].result(60)
members = [User.objects.create_user(name, password=name + "-pw") for name in ("alice", "bob")]
room = Room.objects.create(name="Lab", slug="lab", assistant=assistant)
room.members.set(members)
conversation = services.conversation_create(room=room, user=members[0], title="Scale")
cookies = {}
for user in members:
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    cookies[user.username] = f"{settings.SESSION_COOKIE_NAME}={session.session_key}"
print(json.dumps({"conversation": conversation.pk, "cookies": cookies}))
