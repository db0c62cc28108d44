"""Business hours: is a workspace open now, and when does that change?

Hours are wall-clock intervals per weekday in the workspace's time zone
(:class:`accounts.models.BusinessHours`), so they follow daylight saving time by
themselves: 09:00-17:00 is 09:00-17:00 local time in winter and in summer, and on the day
the clocks change. A day may have several intervals (09:00-12:00 and 13:00-17:00). An
interval never runs past midnight; a closing time of 23:59 means "until midnight", so a
night shift is two rows (Mon 22:00-23:59 and Tue 00:00-06:00).

With business hours off the workspace is always open; with them on and no rows, never.
"""

import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.utils import timezone

from .models import BusinessHours, Workspace

END_OF_DAY = time(23, 59)  # and later: open until midnight
UTC = zoneinfo.ZoneInfo("UTC")


@dataclass(frozen=True)
class Schedule:
    """A workspace's hours, loaded once (one query); pure functions of time after that."""

    enabled: bool
    zone: zoneinfo.ZoneInfo
    # weekday -> [(opens, closes)]; closes None = until midnight
    days: dict[int, tuple[tuple[time, time | None], ...]]

    def is_open(self, at: datetime | None = None) -> bool:
        if not self.enabled:
            return True
        local = (at or timezone.now()).astimezone(self.zone)
        now = local.time().replace(tzinfo=None)
        return any(
            opens <= now and (closes is None or now < closes)
            for opens, closes in self.days.get(local.weekday(), ())
        )

    def next_change(self, at: datetime | None = None) -> datetime | None:
        """When ``is_open`` next changes after ``at`` (within 8 days), else None."""
        if not self.enabled or not self.days:
            return None
        at = at or timezone.now()
        current = self.is_open(at)
        today = at.astimezone(self.zone).date()
        candidates: set[datetime] = set()
        for offset in range(0, 9):
            day = today + timedelta(days=offset)
            candidates.update(self._instants(day, time(0, 0)))  # a new weekday starts
            candidates.update(self._clock_changes(day))  # the wall clock jumps
            for opens, closes in self.days.get(day.weekday(), ()):
                candidates.update(self._instants(day, opens))
                if closes is not None:
                    candidates.update(self._instants(day, closes))
        for instant in sorted(candidates):
            if instant > at and self.is_open(instant) != current:
                return instant
        return None

    def _clock_changes(self, day: date) -> list[datetime]:
        """The instants around ``day`` when the zone's UTC offset changes (to the minute)."""
        start = datetime.combine(day, time(0), tzinfo=UTC) - timedelta(hours=14)
        changes = []
        for hour in range(48):
            lo, hi = start + timedelta(hours=hour), start + timedelta(hours=hour + 1)
            if lo.astimezone(self.zone).utcoffset() == hi.astimezone(self.zone).utcoffset():
                continue
            while hi - lo > timedelta(minutes=1):  # bisect to the minute
                mid = lo + (hi - lo) / 2
                mid = mid.replace(second=0, microsecond=0)
                if mid <= lo:
                    break
                same = mid.astimezone(self.zone).utcoffset() == lo.astimezone(self.zone).utcoffset()
                lo, hi = (mid, hi) if same else (lo, mid)
            changes.append(hi)
        return changes

    def _instants(self, day: date, wall: time) -> list[datetime]:
        # A wall time happens twice when the clocks go back (fold 0 and 1), and not at
        # all when they go forward (both folds then land just after the gap).
        return [
            datetime.combine(day, wall, tzinfo=self.zone).replace(fold=fold).astimezone(UTC)
            for fold in (0, 1)
        ]


def schedule_for(workspace: Workspace) -> Schedule:
    """The workspace's schedule; queries the rows only when business hours are on."""
    try:
        zone = zoneinfo.ZoneInfo(workspace.timezone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = zoneinfo.ZoneInfo("UTC")
    days: dict[int, list[tuple[time, time | None]]] = {}
    if workspace.business_hours_enabled:
        for weekday, opens, closes in BusinessHours.objects.filter(
            workspace_id=workspace.pk
        ).values_list("weekday", "opens_at", "closes_at"):
            if closes <= opens:  # refused by clean(); ignore a row written around it
                continue
            days.setdefault(weekday, []).append((opens, None if closes >= END_OF_DAY else closes))
    return Schedule(
        enabled=workspace.business_hours_enabled,
        zone=zone,
        days={k: tuple(sorted(v)) for k, v in days.items()},
    )


def workspace_is_open(workspace: Workspace, at: datetime | None = None) -> bool:
    """Is the workspace within its business hours at ``at`` (now)? Off: always open."""
    return schedule_for(workspace).is_open(at)
