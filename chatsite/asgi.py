"""ASGI entry point: Daphne serves HTTP (Django) and the room websockets (Channels).

Room sockets need a signed-in session (AuthMiddlewareStack) and an Origin that is exactly this site's own
(scheme, host and port, the host in ALLOWED_HOSTS) or one of CHAT_ALLOWED_ORIGINS (rooms/limits.py), so another
site cannot open a socket with a member's cookies. chatsite/server.py serves this application with request limits.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from assistant_chat.api.asgi_chat import chat_fast_path  # noqa: E402
from assistant_chat.monitoring.endpoints import operations_endpoints  # noqa: E402
from assistant_chat.rooms.limits import ExactOriginValidator  # noqa: E402
from assistant_chat.rooms.routing import websocket_urlpatterns  # noqa: E402
from assistant_chat.rooms.turn_runner import install_shutdown_drain  # noqa: E402


def websocket_app():  # type: ignore[no-untyped-def]
    return ExactOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))


# /healthz, /readyz and /metrics are answered before Django (see assistant_chat/monitoring/endpoints.py).
application = ProtocolTypeRouter(
    {"http": operations_endpoints(chat_fast_path(django_asgi_app)), "websocket": websocket_app()}
)
# Under Daphne, SIGTERM drains running answers before the process exits (CHAT_DRAIN_SECONDS).
install_shutdown_drain()
