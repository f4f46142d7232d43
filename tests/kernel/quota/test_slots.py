from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from broker.kernel.quota.models import Rule, Subject
from broker.kernel.quota.slots import Binding, PeriodCalendar, period_bounds

PARIS = ZoneInfo("Europe/Paris")
UTC = ZoneInfo("UTC")


def ts(text: str, zone: ZoneInfo) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


def test_windows_are_sixty_buckets() -> None:
    binding = Binding(Rule("r", "user", "*", "requests", 10, window="1m"), Subject("user", "u"))
    slot = binding.slot(120.5, PeriodCalendar(UTC))
    assert (slot.bucket, slot.bucket_seconds) == (120, 1.0)
    assert slot.ends_at - 120.5 == pytest.approx(0.5)
    hour = Binding(Rule("r", "user", "*", "requests", 10, window="1h"), Subject("user", "u"))
    assert hour.slot(3600.0, PeriodCalendar(UTC))[:4] == ("w:r:user:u", True, 60, 60.0)


def test_a_binding_moves_to_the_next_bucket_and_back_in_time() -> None:
    binding = Binding(Rule("r", "user", "*", "requests", 10, window="1m"), Subject("user", "u"))
    calendar = PeriodCalendar(UTC)
    assert binding.slot(100.2, calendar).bucket == 100
    assert binding.slot(100.9, calendar).bucket == 100
    assert binding.slot(101.0, calendar).bucket == 101
    assert binding.slot(50.0, calendar).bucket == 50


def test_monthly_budget_resets_at_local_midnight_of_the_first() -> None:
    before = ts("2026-11-30T23:59:59", PARIS)
    after = ts("2026-12-01T00:00:00", PARIS)
    start, end, key = period_bounds(before, "monthly", PARIS)
    assert key == "2026-11" and end == after
    assert start == ts("2026-11-01T00:00:00", PARIS)
    assert period_bounds(after, "monthly", PARIS)[2] == "2026-12"
    # In UTC the same instant is still November: the zone decides the boundary.
    assert period_bounds(ts("2026-11-30T23:30:00", UTC), "monthly", PARIS)[2] == "2026-12"


def test_december_rolls_into_january() -> None:
    _, end, key = period_bounds(ts("2026-12-15T12:00:00", UTC), "monthly", UTC)
    assert key == "2026-12" and end == ts("2027-01-01T00:00:00", UTC)


def test_daily_period_across_a_daylight_saving_change_is_23_hours() -> None:
    start, end, key = period_bounds(ts("2026-03-29T12:00:00", PARIS), "daily", PARIS)
    assert key == "2026-03-29" and end - start == 23 * 3600


def test_weekly_period_starts_on_monday() -> None:
    start, end, key = period_bounds(ts("2026-11-26T10:00:00", UTC), "weekly", UTC)  # a Thursday
    assert start == ts("2026-11-23T00:00:00", UTC) and end == ts("2026-11-30T00:00:00", UTC)
    assert key == "2026-W48"


def test_budget_slot_names_the_period_and_changes_with_it() -> None:
    binding = Binding(Rule("r", "team", "t1", "usd", 100, period="monthly"), Subject("team", "t1"))
    calendar = PeriodCalendar(UTC)
    slot = binding.slot(ts("2026-02-10T00:00:00", UTC), calendar)
    assert slot.key == "b:r:team:t1:2026-02" and slot.period_key == "2026-02"
    assert binding.slot(ts("2026-03-01T00:00:00", UTC), calendar).period_key == "2026-03"
