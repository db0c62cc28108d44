"""The ASGI module moves what it imported out of the collector's reach (docs/performance.md:
without it, full collections after a burst of uploads walked every module object and
stalled the event loop for 100+ ms)."""

import os
import subprocess
import sys

from django.conf import settings

# In a fresh interpreter, so that neither the test run's imports nor its order matter.
PROBE = """
import gc
before = gc.get_freeze_count()
import helpdesk.asgi
print(before, gc.get_freeze_count())
"""


def test_the_asgi_module_freezes_what_it_imported():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "helpdesk.settings"}
    out = subprocess.run(  # noqa: S603 - fixed command line
        [sys.executable, "-c", PROBE],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    before, after = map(int, out.stdout.split())
    assert before == 0
    assert after > 10_000  # Django, Channels, the project: over 100,000 objects in practice
