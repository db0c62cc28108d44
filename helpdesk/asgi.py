"""ASGI entry point: HTTP goes to Django, WebSockets to the chat consumers."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path  # noqa: E402

from chat.consumers import AgentConsumer, VisitorConsumer  # noqa: E402

websocket_urlpatterns = [
    # Visitors are checked against their workspace's allowed origins in the consumer.
    path("ws/visitor/", VisitorConsumer.as_asgi()),
    # The console is served by this site only, and needs the agent's session.
    path("ws/agent/", AllowedHostsOriginValidator(AuthMiddlewareStack(AgentConsumer.as_asgi()))),
]

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": URLRouter(websocket_urlpatterns),
    }
)

# Everything imported so far lives as long as the process: move it out of the garbage
# collector's generations so that a full collection walks only what was made since.
gc.freeze()
