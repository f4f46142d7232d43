"""The counter-store port: check-and-count all of a request's rules at once, charge usage, claim alerts.

Both adapters implement exactly these semantics, so the same sequence of calls gives the same decisions:

- ``admit``: for each check, ``used`` is the window's sum (or the period's total). A check with
  ``cost > 0`` (a request counter) passes when ``used + cost <= limit``; a check with ``cost == 0`` (tokens
  or USD, charged after the call) passes when ``used < limit`` and, with an estimate, when
  ``used + estimate <= limit``. Only when every check passes are the request counters incremented.
- ``charge``: adds amounts and returns each counter before and after.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol


class Slot(NamedTuple):
    """The counter a (rule, subject) pair uses until ``ends_at``."""

    key: str
    is_window: bool
    bucket: int  # current bucket index (windows); 0 for budgets
    bucket_seconds: float
    ttl: int  # how long the counter must outlive the slot's start
    starts_at: float
    ends_at: float  # end of the current bucket (window) or period (budget)
    period_key: str = ""


class Check(NamedTuple):
    """One counter to check (and count, when ``cost > 0``) for a request (a tuple: this is the hot path)."""

    slot: Slot
    limit: float
    cost: float
    estimate: float | None = None


class AdmitOutcome(NamedTuple):
    """Whether every check passed; the usage each saw; the oldest used bucket of each window."""

    allowed: bool
    failed: int | None  # index of the first failing check
    used: tuple[float, ...]
    oldest: tuple[int | None, ...]


class Add(NamedTuple):
    """An amount to add to one counter."""

    slot: Slot
    amount: float


def passes(used: float, check: Check) -> bool:
    """The admission rule shared by both adapters (the Redis Lua script mirrors it)."""
    if check.cost > 0:
        return used + check.cost <= check.limit
    if used >= check.limit:
        return False
    return check.estimate is None or used + check.estimate <= check.limit


class CounterStore(Protocol):
    """Usage counters for quota rules."""

    async def admit(self, checks: list[Check]) -> AdmitOutcome:
        """Check every counter and, only if all pass, count the request; atomically."""
        ...

    async def charge(self, adds: list[Add]) -> list[tuple[float, float]]:
        """Add each amount; return (before, after) per counter; atomically."""
        ...

    async def read(self, slots: list[Slot]) -> list[float]:
        """Current usage of each counter, without changing anything."""
        ...

    async def claim_alert(self, key: str, ttl: int) -> bool:
        """True exactly once per key until it expires (at most one alert per threshold and period)."""
        ...

    async def healthy(self) -> bool:
        """Probe a store marked down by a failed request (True when it works again; a working store is not
        probed): how it comes back after an outage."""
        ...
