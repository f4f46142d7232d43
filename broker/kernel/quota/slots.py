"""Where a (rule, subject) pair is counted right now: a bucket of a sliding window, or a calendar period.

A window of W seconds is kept as 60 buckets of W/60 seconds; the usage of the window is the sum of the
60 buckets ending with the current one, so it slides with a precision of 1/60 of its length. Budgets
count per natural period (day, ISO week starting Monday, month) aligned in the configured time zone.

This is the hot path of every request, so a ``Binding`` keeps its current slot until the bucket or
period ends, and period boundaries are computed once per period, not once per request.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from broker.kernel.quota.models import BUCKETS, WINDOW_SECONDS, Period, Rule, Subject
from broker.kernel.quota.ports import Check, Slot


class PeriodCalendar:
    """Period boundaries in one time zone, remembered until the period ends."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self._current: dict[str, tuple[float, float, str]] = {}

    def bounds(self, now: float, period: Period) -> tuple[float, float, str]:
        cached = self._current.get(period)
        if cached is not None and cached[0] <= now < cached[1]:
            return cached
        fresh = period_bounds(now, period, self.zone)
        self._current[period] = fresh
        return fresh


class Binding:
    """One rule applied to one subject, with the slot it is counting in right now."""

    __slots__ = ("_check", "_slot", "key", "rule", "subject")

    def __init__(self, rule: Rule, subject: Subject) -> None:
        self.rule = rule
        self.subject = subject
        self.key = f"{'w' if rule.window else 'b'}:{rule.id}:{subject}"
        self._slot: Slot | None = None
        self._check: Check | None = None

    def check(self, now: float, calendar: PeriodCalendar) -> Check:
        """The admission check for this slot: count one request, or (tokens, USD) just look."""
        check = self._check
        if check is not None and check.slot.starts_at <= now < check.slot.ends_at:
            return check
        slot = self.slot(now, calendar)
        if check is None or check.slot is not slot:
            cost = 1.0 if self.rule.metric == "requests" else 0.0
            check = self._check = Check(slot, self.rule.limit, cost, None)
        return check

    def slot(self, now: float, calendar: PeriodCalendar) -> Slot:
        slot = self._slot
        if slot is not None and slot.starts_at <= now < slot.ends_at:
            return slot
        slot = self._window_slot(now) if self.rule.window else self._budget_slot(now, calendar)
        self._slot = slot
        return slot

    def _window_slot(self, now: float) -> Slot:
        assert self.rule.window is not None
        seconds = WINDOW_SECONDS[self.rule.window]
        size = seconds / BUCKETS
        bucket = int(now // size)
        return Slot(self.key, True, bucket, size, int(seconds + size) + 1, bucket * size, (bucket + 1) * size)

    def _budget_slot(self, now: float, calendar: PeriodCalendar) -> Slot:
        assert self.rule.period is not None
        start, end, name = calendar.bounds(now, self.rule.period)
        return Slot(f"{self.key}:{name}", False, 0, 0.0, int(end - start) + 3600, start, end, name)


def period_bounds(now: float, period: Period, zone: ZoneInfo) -> tuple[float, float, str]:
    """Start and end (Unix seconds) of the period containing ``now`` in ``zone``, and its name."""
    local = datetime.fromtimestamp(now, zone)
    if period == "daily":
        first = local.date()
        following = first + timedelta(days=1)
        name = first.strftime("%Y-%m-%d")
    elif period == "weekly":
        first = (local - timedelta(days=local.weekday())).date()
        following = first + timedelta(days=7)
        year, week, _ = first.isocalendar()
        name = f"{year}-W{week:02d}"
    else:
        first = local.date().replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
        name = first.strftime("%Y-%m")
    # Built from wall-clock dates, so a DST change inside the period still ends it at local midnight.
    start = datetime(first.year, first.month, first.day, tzinfo=zone).timestamp()
    end = datetime(following.year, following.month, following.day, tzinfo=zone).timestamp()
    return start, end, name


def retry_after(slot: Slot, oldest_bucket: int | None, now: float) -> float:
    """Seconds until the counter can have room again: the oldest used bucket leaves, or the period ends."""
    if slot.is_window and oldest_bucket is not None:
        return max((oldest_bucket + BUCKETS) * slot.bucket_seconds - now, 0.0)
    return slot.ends_at - now
