"""The families' rules that need no store: ages, the monthly allowance, cancelling and joining.

Pure: every moment is passed in (aware datetimes); nothing reads a clock. The store counts the
bookings and grants; these functions decide with the counts.

- **Allowance.** A prisoner has ``monthly_allowance`` calls per calendar month, counted in the
  time zone of the moment given (the prison's), plus whatever extra calls governors granted for
  that month. A call is refused when the calls already booked reach that sum.
- **Cancelling.** A booked call may be cancelled until ``cutoff_hours`` before it starts.
- **Joining.** A join link works from ``join_opens_minutes`` before the start to the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta


def age_on(born: date, day: date) -> int:
    """Whole years between a date of birth and a day."""
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def month_bounds(moment: datetime) -> tuple[datetime, datetime]:
    """The first instant of ``moment``'s calendar month and of the next, in its time zone."""
    first = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0, fold=0)
    following = (first + timedelta(days=32)).replace(day=1)
    return first, following


def month_key(moment: datetime) -> str:
    """``YYYY-MM`` of the month ``moment`` falls in (in its time zone): what grants are filed under."""
    return f"{moment.year:04d}-{moment.month:02d}"


@dataclass(frozen=True, slots=True)
class Allowance:
    """One prisoner's calls in one month."""

    month: str  # YYYY-MM
    free: int  # the monthly allowance
    extra: int  # granted by governors for this month
    used: int  # calls booked starting in this month

    @property
    def left(self) -> int:
        return max(0, self.free + self.extra - self.used)


def cancel_deadline(starts_at: datetime, cutoff_hours: float) -> datetime:
    return starts_at - timedelta(hours=cutoff_hours)


def may_cancel(starts_at: datetime, now: datetime, cutoff_hours: float) -> bool:
    """Whether a call starting at ``starts_at`` may still be cancelled at ``now``."""
    return now <= cancel_deadline(starts_at, cutoff_hours)


def join_opens(starts_at: datetime, opens_minutes: int) -> datetime:
    return starts_at - timedelta(minutes=opens_minutes)


def may_join(starts_at: datetime, ends_at: datetime, now: datetime, opens_minutes: int) -> bool:
    """Whether the join link of a call works at ``now``."""
    return join_opens(starts_at, opens_minutes) <= now < ends_at


__all__ = [
    "Allowance",
    "age_on",
    "cancel_deadline",
    "join_opens",
    "may_cancel",
    "may_join",
    "month_bounds",
    "month_key",
]
