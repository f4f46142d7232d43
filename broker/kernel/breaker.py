"""A three-state circuit breaker that counts only upstream failures (transport errors, timeouts) — never a
user's bad arguments or a tool's ``isError`` result."""

from __future__ import annotations

from typing import Literal

from broker.kernel.clock import Clock

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures; after ``cooldown`` lets one trial call through."""

    def __init__(self, clock: Clock, threshold: int = 5, cooldown: float = 30.0) -> None:
        self._clock = clock
        self._threshold = threshold
        self._cooldown = cooldown
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        if self._clock.now() - self._opened_at >= self._cooldown:
            return "half_open"
        return "open"

    def allow(self) -> bool:
        """Whether a call may go to the upstream now (in half-open, exactly one trial at a time)."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._trial_running:
            self._trial_running = True
            return True
        return False

    def succeeded(self) -> None:
        self._failures, self._opened_at, self._trial_running = 0, None, False

    def failed(self) -> None:
        self._trial_running = False
        self._failures += 1
        if self._failures >= self._threshold or self._opened_at is not None:
            self._opened_at = self._clock.now()
