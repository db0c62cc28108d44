"""Settings of the naive baseline: Django's and Channels' tutorial defaults.

The one change from the tutorial: redis-py 8 defaults ``socket_timeout`` to 5 s, the
same as channels-redis's blocking read, so with the layer's defaults every consumer
idle for 5 s dies ("Timeout reading from ...", channels_redis issue 422). The baseline
raises that timeout so that it measures throughput instead of that crash;
``NAIVE_STRICT_DEFAULTS=1`` keeps the bare defaults to show the crash.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = os.environ.get("NAIVE_SECRET_KEY", "naive-baseline-not-a-secret")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "channels",
    "room",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "naive.urls"
ASGI_APPLICATION = "naive.asgi.application"
TEMPLATES = []

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("NAIVE_DB_NAME", "helpdesk_bench_naive"),
        "USER": os.environ.get("NAIVE_DB_USER", "postgres"),
        "HOST": os.environ.get("NAIVE_DB_HOST", "127.0.0.1"),
        "PORT": os.environ.get("NAIVE_DB_PORT", "5432"),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"

_redis = os.environ.get("NAIVE_REDIS_URL", "redis://127.0.0.1:6379/14")
_host = (
    _redis if os.environ.get("NAIVE_STRICT_DEFAULTS") else {"address": _redis, "socket_timeout": 60}
)
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [_host], "prefix": os.environ.get("NAIVE_CHANNEL_PREFIX", "naive")},
    }
}
# "all": every agent gets every visitor message (a chat room, as in the tutorial);
# "one": conversation_id % agents picks one (the visitor's URL carries agents=N).
NAIVE_FANOUT = os.environ.get("NAIVE_FANOUT", "all")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
