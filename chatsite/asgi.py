"""ASGI entry point: Daphne serves HTTP (Django) and, from the rooms issue on, websockets (Channels)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from assistant_chat.api.asgi_chat import chat_fast_path  # noqa: E402

application = ProtocolTypeRouter({"http": chat_fast_path(django_asgi_app)})
