"""Settings for the helpdesk project, read from the environment.

Two ways to run, one code base:

* production: ``DATABASE_URL`` points at PostgreSQL + PostGIS and ``REDIS_URL`` at Redis;
  the channel layer is channels-redis and Celery talks to Redis.
* embedded default (nothing set): a SpatiaLite file under ``var/``, the in-memory channel
  layer and eager Celery tasks, so one process is all there is to start.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()

DATABASE_URL = env.str("DATABASE_URL", default="")
REDIS_URL = env.str("REDIS_URL", default="")
EMBEDDED = not DATABASE_URL

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not EMBEDDED and not env.bool("HELPDESK_INSECURE_DEV_KEY", default=False):
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY must be set when DATABASE_URL is set (production mode)."
        )
    # Embedded/dev default: a key kept on disk so sessions survive restarts.
    VAR_DIR.mkdir(exist_ok=True)
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        from django.core.management.utils import get_random_secret_key

        key_file.write_text(get_random_secret_key())
        key_file.chmod(0o600)
    SECRET_KEY = key_file.read_text().strip()

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.gis",
    "rest_framework",
    "rest_framework_gis",
    "drf_spectacular",
    "guardian",
    "channels",
    "accounts",
    "chat",
    "knowledge",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "helpdesk.urls"
ASGI_APPLICATION = "helpdesk.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
if EMBEDDED:
    VAR_DIR.mkdir(exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.contrib.gis.db.backends.spatialite",
            "NAME": env.str("HELPDESK_SQLITE_PATH", default=str(VAR_DIR / "helpdesk.sqlite3")),
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        }
    }
else:
    DATABASES = {"default": env.db_url_config(DATABASE_URL)}
    if DATABASES["default"]["ENGINE"] in (
        "django.db.backends.postgresql",
        "django.contrib.gis.db.backends.postgis",
    ):
        DATABASES["default"]["ENGINE"] = "django.contrib.gis.db.backends.postgis"
        # A persistent pool: opening a connection per message is the tutorial's mistake.
        DATABASES["default"]["CONN_MAX_AGE"] = 0
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": env.int("HELPDESK_DB_POOL_MIN", default=2),
            "max_size": env.int("HELPDESK_DB_POOL_MAX", default=16),
            "timeout": 10,
        }
        # No JIT: it compiles any query whose estimated cost passes jit_above_cost, and the
        # writer's locking read of a batch of 100 conversations (planned at ~120,000) spent
        # 34 ms compiling for 11 ms of work. Short OLTP queries never gain from it.
        DATABASES["default"]["OPTIONS"].setdefault("options", "-c jit=off")
    if env.str("HELPDESK_TEST_DB_NAME", default=""):
        DATABASES["default"]["TEST"] = {"NAME": env.str("HELPDESK_TEST_DB_NAME")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
LOGIN_URL = "console:login"
LOGIN_REDIRECT_URL = "console:index"
LOGOUT_REDIRECT_URL = "console:login"

# --- Internationalisation ---------------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("zh-hans", _("Simplified Chinese"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static and uploaded files ----------------------------------------------------------------
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.str("HELPDESK_STATIC_ROOT", default=str(VAR_DIR / "staticfiles"))
MEDIA_ROOT = env.str("HELPDESK_MEDIA_ROOT", default=str(VAR_DIR / "media"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
# Uploads never sit whole in memory past this size.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

# --- Real time --------------------------------------------------------------------------------
if REDIS_URL:
    _REDIS_HOST = {
        "address": REDIS_URL,
        # redis-py 8 defaults socket_timeout to 5 s, the same as channels-redis's
        # blocking read: idle consumers then die with "Timeout reading from ...".
        # Keep the timeout well above the 5 s BRPOP (channels_redis issue 422).
        "socket_timeout": 60,
        "socket_connect_timeout": 5,
        "socket_keepalive": True,
        # redis-py 8's async pool fails at once past 100 connections
        # ("Too many connections"); a burst of connects or fan-out needs more.
        "max_connections": env.int("HELPDESK_REDIS_MAX_CONNECTIONS", default=2000),
    }
    # pubsub (default): one PUBLISH per group send, pushed to each process; nothing is
    # capped or dropped by the layer. core: per-process lists read by BRPOP, a capacity
    # per process past which channels-redis drops messages with only an INFO log (see
    # docs/performance.md for the measurements behind the default).
    if env.str("HELPDESK_CHANNEL_LAYER", default="pubsub") == "core":
        CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {
                    "hosts": [_REDIS_HOST],
                    "prefix": env.str("HELPDESK_CHANNEL_PREFIX", default="helpdesk"),
                    "capacity": env.int("HELPDESK_CHANNEL_CAPACITY", default=1000),
                    "expiry": 60,
                    "group_expiry": 86400,
                },
            }
        }
    else:
        CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                "CONFIG": {
                    "hosts": [_REDIS_HOST],
                    "prefix": env.str("HELPDESK_CHANNEL_PREFIX", default="helpdesk"),
                },
            }
        }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Celery -----------------------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# The tasks wait on AI providers and the database, not on the CPU: threads, many per
# process. The bench's bot scenario (docs/performance.md): with prefork and one child per
# core, questions queued behind a slow provider. The threads pool enforces no task time
# limits; every wait in the tasks has its own bound (provider timeouts, ask_all).
CELERY_WORKER_POOL = env.str("HELPDESK_WORKER_POOL", default="threads")
CELERY_WORKER_CONCURRENCY = env.int("HELPDESK_WORKER_CONCURRENCY", default=16)
# Producers and workers of one deployment share it; tests give each run its own.
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="celery")

# --- REST framework ---------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {"TITLE": "Helpdesk API", "VERSION": "1.0.0"}

# --- Security ---------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("HELPDESK_BEHIND_PROXY", False) else None
)

# --- Helpdesk ---------------------------------------------------------------------------------
# Take the visitor's address from X-Forwarded-For only behind a proxy we trust.
HELPDESK_TRUST_X_FORWARDED_FOR = env.bool("HELPDESK_TRUST_X_FORWARDED_FOR", default=False)
# A MaxMind GeoLite2/GeoIP2 City (or Country) database; without one, no location.
GEOIP_PATH = env.str("GEOIP_PATH", default="")
HELPDESK_MAX_MESSAGE_CHARS = env.int("HELPDESK_MAX_MESSAGE_CHARS", default=5000)
HELPDESK_MAX_FRAME_BYTES = env.int("HELPDESK_MAX_FRAME_BYTES", default=64 * 1024)
HELPDESK_HISTORY_LIMIT = 200
# An agent socket not heard from for this long no longer counts as online.
# Threads per process for the sockets' database calls (chat.db); SQLite has one writer.
HELPDESK_DB_THREADS = env.int("HELPDESK_DB_THREADS", default=1 if EMBEDDED else 4)
HELPDESK_AGENT_STALE_SECONDS = env.int("HELPDESK_AGENT_STALE_SECONDS", default=75)
# Dotted path to the class used by the "custom" routing strategy (docs/routing.md).
HELPDESK_ROUTING_CUSTOM_STRATEGY = env.str("HELPDESK_ROUTING_CUSTOM_STRATEGY", default="")
# The bot (knowledge/pipeline.py): the circuit breaker of each AI provider, the prefix of
# its Redis keys, and the public address used to link help-centre articles in bot replies.
HELPDESK_BREAKER_FAILURES = env.int("HELPDESK_BREAKER_FAILURES", default=3)
HELPDESK_BREAKER_COOLDOWN_SECONDS = env.float("HELPDESK_BREAKER_COOLDOWN_SECONDS", default=30.0)
HELPDESK_BREAKER_PROBE_LEASE_SECONDS = env.float(
    "HELPDESK_BREAKER_PROBE_LEASE_SECONDS", default=60.0
)
HELPDESK_KEY_PREFIX = env.str("HELPDESK_CHANNEL_PREFIX", default="helpdesk")
HELPDESK_PUBLIC_URL = env.str("HELPDESK_PUBLIC_URL", default="")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("HELPDESK_LOG_LEVEL", default="INFO")},
    "loggers": {
        # channels-redis reports dropped group messages at INFO only: never hide that.
        "channels_redis": {"level": "INFO"},
        "daphne": {"level": "WARNING"},
        "django.channels.server": {"level": "WARNING"},
    },
}

# GDAL < 3.9 cannot block file/network access from spatial references; we never accept
# spatial references from users (points come from the GeoIP lookup only).
SILENCED_SYSTEM_CHECKS = ["gis.W001"]
