"""What every widget handshake reads about its workspace, kept per process for a few seconds.

A widget's ``connect`` and ``hello`` used to read the workspace by key, its business hours,
its departments and whether an agent is online: four queries per socket, the same answers
for thousands of sockets. They are cached here (helpdesk.memo.TimedCache):

- the workspace by widget key, business hours and departments: 10 s; a change saved in this
  process clears them at once (signals below, and again after the commit), one saved in
  another process shows within 10 s;
- agents online: 2 s; every availability change this process computes or hears from the
  channel layer (``workspace.availability``) replaces the cached value at once.
"""

from django.db import transaction
from django.db.models.signals import post_delete, post_save

from accounts.hours import Schedule, schedule_for
from accounts.models import BusinessHours, Team, Workspace
from accounts.selectors import workspace_get_by_key, workspace_has_agents_online
from helpdesk.memo import TimedCache

from .departments import department_list

SETTINGS_SECONDS = 10.0
AVAILABILITY_SECONDS = 2.0

_by_key: TimedCache[str, Workspace | None] = TimedCache(
    lambda key: workspace_get_by_key(widget_key=key), seconds=SETTINGS_SECONDS
)
_profile: TimedCache[Workspace, tuple[Schedule, list[dict]]] = TimedCache(
    lambda workspace: (schedule_for(workspace), department_list(workspace=workspace)),
    seconds=SETTINGS_SECONDS,
)
_online: TimedCache[int, bool] = TimedCache(
    lambda workspace_id: workspace_has_agents_online(workspace_id=workspace_id),
    seconds=AVAILABILITY_SECONDS,
)


def workspace_for_key(key: str) -> Workspace | None:
    """The workspace of a widget key (shared, read-only: never save it)."""
    return _by_key.get(key)


def workspace_hours_and_departments(workspace: Workspace) -> tuple[Schedule, list[dict]]:
    return _profile.get(workspace)


def agents_online(workspace_id: int) -> bool:
    return _online.get(workspace_id)


def agents_online_heard(workspace_id: int, online: bool) -> None:
    """An availability change computed here or received from the channel layer."""
    _online.put(workspace_id, online)


def clear() -> None:
    _by_key.clear()
    _profile.clear()
    _online.clear()


def _settings_changed(sender, **kwargs) -> None:
    _by_key.clear()
    _profile.clear()
    # After the commit too: a reader between the save and the commit could cache the old row.
    transaction.on_commit(lambda: (_by_key.clear(), _profile.clear()))


for _model in (Workspace, Team, BusinessHours):
    post_save.connect(_settings_changed, sender=_model, dispatch_uid=f"widget_cache_{_model}")
    post_delete.connect(_settings_changed, sender=_model, dispatch_uid=f"widget_cache_d_{_model}")
