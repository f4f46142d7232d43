"""In-process counters: the embedded default for a single instance.

A window keeps its buckets in order with a running total, so reading it costs O(1) amortised instead of
summing 60 buckets; expired budget periods and alert claims are swept at most once a minute.
"""

from __future__ import annotations

import time
from collections import deque

from broker.kernel.quota.models import BUCKETS
from broker.kernel.quota.ports import Add, AdmitOutcome, Check, passes
from broker.kernel.quota.slots import Slot


class _Window:
    __slots__ = ("buckets", "expires", "total")

    def __init__(self) -> None:
        self.buckets: deque[list[float]] = deque()  # [bucket index, amount], oldest first
        self.total = 0.0
        self.expires = 0.0  # monotonic time after which an untouched window is certainly empty

    def slide(self, current: int) -> None:
        while self.buckets and self.buckets[0][0] <= current - BUCKETS:
            self.total -= self.buckets.popleft()[1]
        if not self.buckets:
            self.total = 0.0  # no drift survives an empty window

    def add(self, bucket: int, amount: float) -> None:
        if self.buckets and self.buckets[-1][0] == bucket:
            self.buckets[-1][1] += amount
        else:
            self.buckets.append([bucket, amount])
        self.total += amount

    def oldest(self) -> int | None:
        return int(self.buckets[0][0]) if self.buckets else None


class MemoryCounters:
    """Counters in this process's memory; all operations are synchronous, hence atomic under asyncio."""

    def __init__(self) -> None:
        self._windows: dict[str, _Window] = {}
        self._budgets: dict[str, tuple[float, float]] = {}  # key -> (amount, expires at, monotonic)
        self._claims: dict[str, float] = {}
        self._next_sweep = 0.0

    async def admit(self, checks: list[Check]) -> AdmitOutcome:
        self._sweep()
        used, oldest = [], []
        for check in checks:
            value, first = self._current(check.slot)
            used.append(value)
            oldest.append(first)
        for index, check in enumerate(checks):
            if not passes(used[index], check):
                return AdmitOutcome(False, index, tuple(used), tuple(oldest))
        for check in checks:
            if check.cost > 0:
                self._add(check.slot, check.cost)
        return AdmitOutcome(True, None, tuple(used), tuple(oldest))

    async def charge(self, adds: list[Add]) -> list[tuple[float, float]]:
        moves = []
        for add in adds:
            before, _ = self._current(add.slot)
            moves.append((before, self._add(add.slot, add.amount)))
        return moves

    async def read(self, slots: list[Slot]) -> list[float]:
        return [self._current(slot)[0] for slot in slots]

    async def claim_alert(self, key: str, ttl: int) -> bool:
        now = time.monotonic()
        if self._claims.get(key, 0.0) > now:
            return False
        self._claims[key] = now + ttl
        return True

    async def healthy(self) -> bool:
        return True

    def _current(self, slot: Slot) -> tuple[float, int | None]:
        if slot.is_window:
            window = self._windows.get(slot.key)
            if window is None:
                return 0.0, None
            window.slide(slot.bucket)
            return window.total, window.oldest()
        entry = self._budgets.get(slot.key)
        return (entry[0] if entry else 0.0), None

    def _add(self, slot: Slot, amount: float) -> float:
        if slot.is_window:
            window = self._windows.setdefault(slot.key, _Window())
            window.slide(slot.bucket)
            window.add(slot.bucket, amount)
            window.expires = time.monotonic() + slot.ttl
            return window.total
        value = self._budgets.get(slot.key, (0.0, 0.0))[0] + amount
        self._budgets[slot.key] = (value, time.monotonic() + slot.ttl)
        return value

    def _sweep(self) -> None:
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + 60
        self._budgets = {k: v for k, v in self._budgets.items() if v[1] > now}
        self._claims = {k: v for k, v in self._claims.items() if v > now}
        self._windows = {k: w for k, w in self._windows.items() if w.expires > now}
