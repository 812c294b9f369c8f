"""The families' pure rules: ages, the monthly allowance, cancelling and joining."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from policies.family import (
    Allowance,
    age_on,
    cancel_deadline,
    join_opens,
    may_cancel,
    may_join,
    month_bounds,
    month_key,
)

LONDON = ZoneInfo("Europe/London")


def test_age_on_a_day_counts_whole_years() -> None:
    born = date(2008, 6, 15)
    assert age_on(born, date(2026, 6, 14)) == 17
    assert age_on(born, date(2026, 6, 15)) == 18
    assert age_on(date(2008, 2, 29), date(2026, 2, 28)) == 17


def test_month_bounds_in_the_prisons_time_zone() -> None:
    # 23:30 UTC on 31 May is 00:30 BST on 1 June: June in London
    moment = datetime(2026, 5, 31, 23, 30, tzinfo=UTC).astimezone(LONDON)
    first, following = month_bounds(moment)
    assert (first, following) == (datetime(2026, 6, 1, tzinfo=LONDON), datetime(2026, 7, 1, tzinfo=LONDON))
    assert first.utcoffset() == timedelta(hours=1)
    assert month_key(moment) == "2026-06"
    december = datetime(2026, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert month_bounds(december)[1] == datetime(2027, 1, 1, tzinfo=timezone(timedelta(hours=-5)))
    # a month whose first instant is in GMT and whose last is in BST
    assert month_bounds(datetime(2027, 3, 30, tzinfo=LONDON))[0].utcoffset() == timedelta(0)


def test_calls_left_counts_grants_and_never_goes_below_zero() -> None:
    assert Allowance("2026-06", free=1, extra=0, used=0).left == 1
    assert Allowance("2026-06", free=1, extra=0, used=1).left == 0
    assert Allowance("2026-06", free=1, extra=2, used=1).left == 2
    assert Allowance("2026-06", free=1, extra=0, used=3).left == 0  # booked by staff beyond it


def test_cancel_until_the_cutoff() -> None:
    start = datetime(2026, 6, 2, 14, 0, tzinfo=LONDON)
    assert cancel_deadline(start, 2) == datetime(2026, 6, 2, 12, 0, tzinfo=LONDON)
    assert may_cancel(start, datetime(2026, 6, 2, 12, 0, tzinfo=LONDON), 2)
    assert not may_cancel(start, datetime(2026, 6, 2, 12, 0, 1, tzinfo=LONDON), 2)


def test_a_join_link_works_from_fifteen_minutes_before_to_the_end() -> None:
    start = datetime(2026, 6, 2, 14, 0, tzinfo=LONDON)
    end = start + timedelta(minutes=30)
    assert join_opens(start, 15) == datetime(2026, 6, 2, 13, 45, tzinfo=LONDON)
    assert not may_join(start, end, start - timedelta(minutes=15, seconds=1), 15)
    assert may_join(start, end, start - timedelta(minutes=15), 15)
    assert may_join(start, end, end - timedelta(seconds=1), 15)
    assert not may_join(start, end, end, 15)
