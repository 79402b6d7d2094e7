"""The reporting window: the last N UTC calendar days, today included, up to now."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from retailctl.core.errors import UsageError


@dataclass(frozen=True)
class Window:
    """[start, end): midnight UTC N-1 days ago up to `end` (now)."""

    days: int
    start: datetime
    end: datetime

    @property
    def first_day(self) -> date:
        return self.start.date()

    @property
    def last_day(self) -> date:
        return self.end.date()

    @property
    def day_after(self) -> datetime:
        """Midnight after the window's last day: rows in [end, day_after) are the future."""
        return datetime.combine(self.last_day + timedelta(days=1), time(), tzinfo=UTC)

    def dates(self) -> list[date]:
        return [self.first_day + timedelta(days=offset) for offset in range(self.days)]


def window_for(*, days: int, now: datetime | None = None) -> Window:
    """Return the window of the last `days` calendar days (UTC) ending now."""
    if days < 1:
        raise UsageError("--days must be at least 1")
    end = (now or datetime.now(UTC)).astimezone(UTC)
    first = end.date() - timedelta(days=days - 1)
    return Window(days=days, start=datetime.combine(first, time(), tzinfo=UTC), end=end)


def window_between(*, start: datetime, end: datetime) -> Window:
    """Return the rolling window [start, end), counted over the calendar days it touches."""
    if not start < end:
        raise UsageError("a window ends after it starts")
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    return Window(days=(end.date() - start.date()).days + 1, start=start, end=end)
