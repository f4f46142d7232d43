"""In-process counters: the embedded default for a single instance.

A window keeps its buckets in order with a running total, so reading it costs O(1) amortised instead of
summing 60 buckets; expired budget periods and alert claims are swept at most once a minute. Every
operation is synchronous inside, so it is atomic under the event loop.
"""

from __future__ import annotations

import time
from collections import deque

from broker.kernel.quota.models import BUCKETS
from broker.kernel.quota.ports import Add, AdmitOutcome, Check, Slot, passes


class _Window:
    __slots__ = ("buckets", "expires", "total")

    def __init__(self) -> None:
        self.buckets: deque[list[float]] = deque()  # [bucket index, amount], oldest first
        self.total = 0.0
        self.expires = 0.0  # monotonic time after which an untouched window is certainly empty

    def slide(self, current: int) -> float:
        buckets = self.buckets
        while buckets and buckets[0][0] <= current - BUCKETS:
            self.total -= buckets.popleft()[1]
        if not buckets:
            self.total = 0.0  # no float drift survives an empty window
        return self.total

    def add(self, bucket: int, amount: float, ttl: int) -> float:
        buckets = self.buckets
        if buckets and buckets[-1][0] == bucket:
            buckets[-1][1] += amount
        else:
            buckets.append([bucket, amount])
        self.total += amount
        self.expires = time.monotonic() + ttl
        return self.total

    def oldest(self) -> int | None:
        return int(self.buckets[0][0]) if self.buckets else None


class MemoryCounters:
    """Counters in this process's memory."""

    def __init__(self) -> None:
        self._windows: dict[str, _Window] = {}
        self._budgets: dict[str, float] = {}
        self._budget_expiry: dict[str, float] = {}
        self._claims: dict[str, float] = {}
        self._next_sweep = 0.0

    async def admit(self, checks: list[Check]) -> AdmitOutcome:
        self._sweep()
        used = tuple([self._read(check.slot) for check in checks])
        for index, check in enumerate(checks):
            if not passes(used[index], check):
                oldest = tuple(self._oldest(c.slot) for c in checks)
                return AdmitOutcome(False, index, used, oldest)
        for check in checks:
            if check.cost > 0:
                self._bump(check.slot, check.cost)
        return AdmitOutcome(True, None, used, ())

    async def charge(self, adds: list[Add]) -> list[tuple[float, float]]:
        return [self._bump(add.slot, add.amount) for add in adds]

    async def read(self, slots: list[Slot]) -> list[float]:
        return [self._read(slot) for slot in slots]

    async def claim_alert(self, key: str, ttl: int) -> bool:
        now = time.monotonic()
        if self._claims.get(key, 0.0) > now:
            return False
        self._claims[key] = now + ttl
        return True

    async def healthy(self) -> bool:
        return True

    def _read(self, slot: Slot) -> float:
        if slot.is_window:
            window = self._windows.get(slot.key)
            return window.slide(slot.bucket) if window is not None else 0.0
        return self._budgets.get(slot.key, 0.0)

    def _oldest(self, slot: Slot) -> int | None:
        window = self._windows.get(slot.key) if slot.is_window else None
        return window.oldest() if window is not None else None

    def _bump(self, slot: Slot, amount: float) -> tuple[float, float]:
        """Add ``amount``; return the counter before and after."""
        if slot.is_window:
            window = self._windows.get(slot.key)
            if window is None:
                window = self._windows[slot.key] = _Window()
            before = window.slide(slot.bucket)
            return before, window.add(slot.bucket, amount, slot.ttl)
        before = self._budgets.get(slot.key, 0.0)
        after = self._budgets[slot.key] = before + amount
        self._budget_expiry[slot.key] = time.monotonic() + slot.ttl
        return before, after

    def _sweep(self) -> None:
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + 60
        expired = [key for key, at in self._budget_expiry.items() if at <= now]
        for key in expired:
            del self._budgets[key], self._budget_expiry[key]
        self._claims = {k: v for k, v in self._claims.items() if v > now}
        self._windows = {k: w for k, w in self._windows.items() if w.expires > now}
