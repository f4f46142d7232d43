"""Where a (rule, subject) pair is counted right now: a bucket of a sliding window, or a calendar period.

A window of W seconds is kept as 60 buckets of W/60 seconds; the usage of the window is the sum of the
60 buckets ending with the current one, so it slides with a precision of 1/60 of its length. Budgets
count per natural period (day, ISO week starting Monday, month) aligned in the configured time zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from broker.kernel.quota.models import BUCKETS, WINDOW_SECONDS, Period, Rule, Subject


@dataclass(frozen=True, slots=True)
class Slot:
    """The counter a (rule, subject) pair uses at one moment."""

    key: str
    is_window: bool
    bucket: int  # current bucket index (windows); 0 for budgets
    bucket_seconds: float
    ttl: int  # how long the counter must outlive this moment
    resets_in: float  # seconds until the current bucket (window) or period (budget) ends
    period_key: str = ""


def window_slot(rule: Rule, subject: Subject, now: float) -> Slot:
    assert rule.window is not None
    size = WINDOW_SECONDS[rule.window] / BUCKETS
    bucket = int(now // size)
    return Slot(
        key=f"w:{rule.id}:{subject}", is_window=True, bucket=bucket, bucket_seconds=size,
        ttl=int(WINDOW_SECONDS[rule.window] + size) + 1, resets_in=(bucket + 1) * size - now,
    )


def budget_slot(rule: Rule, subject: Subject, now: float, zone: ZoneInfo) -> Slot:
    assert rule.period is not None
    _start, end, key = period_bounds(now, rule.period, zone)
    return Slot(
        key=f"b:{rule.id}:{subject}:{key}", is_window=False, bucket=0, bucket_seconds=0.0,
        ttl=int(end - now) + 3600, resets_in=end - now, period_key=key,
    )


def slot_for(rule: Rule, subject: Subject, now: float, zone: ZoneInfo) -> Slot:
    return window_slot(rule, subject, now) if rule.window else budget_slot(rule, subject, now, zone)


def period_bounds(now: float, period: Period, zone: ZoneInfo) -> tuple[float, float, str]:
    """Start and end (Unix seconds) of the period containing ``now`` in ``zone``, and its name."""
    local = datetime.fromtimestamp(now, zone)
    if period == "daily":
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        following = (start + timedelta(days=1, hours=12)).replace(hour=0)
        key = start.strftime("%Y-%m-%d")
    elif period == "weekly":
        monday = (local - timedelta(days=local.weekday())).date()
        start = datetime(monday.year, monday.month, monday.day, tzinfo=zone)
        following_day = monday + timedelta(days=7)
        following = datetime(following_day.year, following_day.month, following_day.day, tzinfo=zone)
        year, week, _ = monday.isocalendar()
        key = f"{year}-W{week:02d}"
    else:
        start = datetime(local.year, local.month, 1, tzinfo=zone)
        following = datetime(local.year + local.month // 12, local.month % 12 + 1, 1, tzinfo=zone)
        key = start.strftime("%Y-%m")
    # Rebuild from wall-clock fields so DST transitions inside the period land on local midnight.
    start = datetime(start.year, start.month, start.day, tzinfo=zone)
    following = datetime(following.year, following.month, following.day, tzinfo=zone)
    return start.timestamp(), following.timestamp(), key


def retry_after(slot: Slot, oldest_bucket: int | None, now: float) -> float:
    """Seconds until the counter can have room again: the oldest used bucket leaves, or the period ends."""
    if not slot.is_window:
        return slot.resets_in
    if oldest_bucket is None:
        return slot.resets_in
    return max((oldest_bucket + BUCKETS) * slot.bucket_seconds - now, 0.0)
