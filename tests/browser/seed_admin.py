"""Seeds a live server for the admin browser test (run with `manage.py shell`): a staff member, a member, and an
assistant with two files that both answer the question, told apart by metadata."""

import json

from django.contrib.auth import get_user_model

from assistant_chat import services

User = get_user_model()
User.objects.create_superuser("staff", password="staff-pw-1")
User.objects.create_user("bob", password="bob-pw-1")
assistant = services.assistant_create(name="wildlife")
files = {}
for name, text, metadata in (
    ("field-guide.txt", "Sea otters use rocks as tools to crack open shellfish.", {"team": "field"}),
    ("lab-notes.txt", "Sea otters use rocks as anvils to crack shellfish, the lab notes say.", {"team": "lab"}),
):
    file, _op, future = services.file_upload(assistant=assistant, name=name, data=text.encode(), metadata=metadata)
    future.result(60)
    files[name] = file.file_id
print(json.dumps(files))
