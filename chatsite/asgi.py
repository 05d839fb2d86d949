"""ASGI entry point: Daphne serves HTTP (Django) and the room websockets (Channels).

Room sockets need a signed-in session (AuthMiddlewareStack) and an Origin that is one of this site's hosts
(ALLOWED_HOSTS) or CHAT_ALLOWED_ORIGINS, so another site cannot open a socket with a member's cookies.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import OriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from assistant_chat.api.asgi_chat import chat_fast_path  # noqa: E402
from assistant_chat.monitoring.endpoints import operations_endpoints  # noqa: E402
from assistant_chat.rooms.routing import websocket_urlpatterns  # noqa: E402


def websocket_app():  # type: ignore[no-untyped-def]
    origins = [*settings.ALLOWED_HOSTS, *settings.CHAT_ALLOWED_ORIGINS]
    return OriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)), origins)


# /healthz, /readyz and /metrics are answered before Django (see assistant_chat/monitoring/endpoints.py).
application = ProtocolTypeRouter(
    {"http": operations_endpoints(chat_fast_path(django_asgi_app)), "websocket": websocket_app()}
)
