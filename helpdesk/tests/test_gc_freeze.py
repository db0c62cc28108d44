"""The ASGI module moves what it imported out of the collector's reach (docs/performance.md:
without it, full collections after a burst of uploads walked every module object and
stalled the event loop for 100+ ms)."""

import gc


def test_the_asgi_module_freezes_what_it_imported():
    import helpdesk.asgi  # noqa: F401

    assert gc.get_freeze_count() > 10_000
