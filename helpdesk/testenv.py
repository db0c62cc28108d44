"""A pytest plugin loaded before Django: tests run in production mode on real services.

PostgreSQL + PostGIS and Redis, as ``make test`` provides them. Any variable already set
in the environment wins.
"""

import os
import uuid
from pathlib import Path

_GEOIP = Path(__file__).resolve().parent.parent.parent / "shared/data/geoip/GeoLite2-City-Test.mmdb"

# The password matters only where PostgreSQL asks for one; make test sets it up.
os.environ.setdefault("DATABASE_URL", "postgis://postgres:postgres@127.0.0.1:5432/helpdesk")
# A test database of this run's own, so two runs on one machine never drop each other's.
os.environ.setdefault("HELPDESK_TEST_DB_NAME", "test_helpdesk_" + uuid.uuid4().hex[:8])
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-" + uuid.uuid4().hex)
# Each run gets its own channel-layer keys, so parallel or stale runs never cross.
os.environ.setdefault("HELPDESK_CHANNEL_PREFIX", "hdtest" + uuid.uuid4().hex[:8])
# ... and its own Celery queue, so a worker started by one run never takes another's tasks.
os.environ.setdefault("CELERY_TASK_DEFAULT_QUEUE", "hdtest-" + uuid.uuid4().hex[:8])
if _GEOIP.exists():
    os.environ.setdefault("GEOIP_PATH", str(_GEOIP))
