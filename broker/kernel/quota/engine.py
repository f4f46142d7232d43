"""The quota engine both surfaces call: ``admit`` before a call, ``charge`` after it.

It turns rules and subjects into counters, asks the counter store, applies the fail-open/fail-closed
policy when the store is down, and fires budget alerts when a charge crosses a threshold.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from zoneinfo import ZoneInfo

import anyio
from prometheus_client import CollectorRegistry, Counter

from broker.kernel.clock import Clock
from broker.kernel.quota.errors import CounterStoreDown, LimiterUnavailable, QuotaExceeded, Refusal
from broker.kernel.quota.models import (
    Admission,
    BudgetMove,
    Counted,
    Estimate,
    QuotaRequest,
    Rule,
    Subject,
    Surface,
    Usage,
)
from broker.kernel.quota.ports import Add, Check, CounterStore
from broker.kernel.quota.rulebook import RuleBook
from broker.kernel.quota.slots import Binding, PeriodCalendar, retry_after

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class QuotaPolicy:
    """Engine-wide settings."""

    timezone: str = "UTC"
    fail_mode: str = "open"  # or "closed"
    alert_thresholds: tuple[float, ...] = (50.0, 80.0, 95.0, 100.0)


@dataclass(frozen=True, slots=True)
class ThresholdCrossed:
    """A budget passed one of its alert thresholds (fired once per subject, rule, period and threshold)."""

    rule: Rule
    subject: Subject
    period_key: str
    threshold: float
    used: float


AlertSink = Callable[[ThresholdCrossed], Awaitable[None]]


class QuotaEngine:
    """Rate limits and budgets over a counter store."""

    def __init__(self, store: CounterStore, rules: RuleBook, clock: Clock, policy: QuotaPolicy,
                 registry: CollectorRegistry, alert: AlertSink) -> None:
        self._store = store
        self.rules = rules
        self._clock = clock
        self._policy = policy
        self._calendar = PeriodCalendar(ZoneInfo(policy.timezone))
        self._alert = alert
        self.apply(policy.fail_mode, policy.alert_thresholds)  # sets the lowest alert threshold
        self._quiet_until = 0.0
        self.fail_open_total = Counter("quota_fail_open", "Requests let through because the quota store was"
                                       " unavailable", registry=registry)
        self.rejected_total = Counter("quota_rejections", "Requests refused by a quota rule", ["surface"],
                                      registry=registry)
        self.unavailable_total = Counter("quota_unavailable", "Quota store operations that failed",
                                         ["operation"], registry=registry)

    @property
    def policy(self) -> QuotaPolicy:
        return self._policy

    def apply(self, fail_mode: str, alert_thresholds: tuple[float, ...]) -> None:
        """New behaviour from the next request on (changed in the console, on every instance)."""
        self._policy = replace(self._policy, fail_mode=fail_mode, alert_thresholds=alert_thresholds)
        self._lowest_threshold = min(alert_thresholds, default=100.0) / 100

    async def admit(self, request: QuotaRequest) -> Admission:
        """Check every applicable rule and count the request, or raise naming the rule that refused it."""
        bindings = self.rules.bindings(request.subjects, request.surface)
        if not bindings:
            return Admission()
        now, calendar = self._clock.now(), self._calendar
        if request.estimate is None:
            checks = [b.check(now, calendar) for b in bindings]
        else:
            checks = [self._with_estimate(b, b.check(now, calendar), request.estimate) for b in bindings]
        try:
            outcome = await self._store.admit(checks)
        except CounterStoreDown as exc:
            return self._store_down("admit", exc)
        if outcome.failed is not None:
            rule, check = bindings[outcome.failed].rule, checks[outcome.failed]
            wait = retry_after(check.slot, outcome.oldest[outcome.failed], now)
            self.rejected_total.labels(request.surface).inc()
            raise QuotaExceeded(Refusal(rule.label, rule.limit, outcome.used[outcome.failed],
                                        max(1, math.ceil(wait))))
        return Admission(bindings, checks, outcome.used, now)

    async def charge(self, surface: Surface, subjects: tuple[Subject, ...], usage: Usage) -> bool:
        """Add a finished call's tokens and cost to every token and USD rule; fire crossed thresholds.

        Returns False when the counter store was unavailable and the usage could not be counted."""
        now, calendar = self._clock.now(), self._calendar
        bindings, adds = [], []
        for binding in self.rules.charged(subjects, surface):
            amount = usage.of(binding.rule.metric)
            if amount > 0:
                bindings.append(binding)
                adds.append(Add(binding.slot(now, calendar), amount))
        if not adds:
            return True
        try:
            moves = await self._store.charge(adds)
        except CounterStoreDown as exc:
            self._store_down("charge", exc)
            return False
        for binding, add, (before, after) in zip(bindings, adds, moves, strict=True):
            if not add.slot.is_window and after >= binding.rule.limit * self._lowest_threshold:
                move = BudgetMove(binding.rule, binding.subject, add.slot.period_key, before, after)
                await self._fire_thresholds(move, add.slot.ttl)
        return True

    async def usage(self, subject: Subject, surface: Surface | None = None) -> list[Counted]:
        """Every rule on this subject with its current usage ("how much of my budget is left")."""
        bindings: list[Binding] = []
        seen: set[str] = set()
        for name in ((surface,) if surface else ("ai", "mcp")):
            for binding in self.rules.bindings((subject,), name):
                if binding.rule.id not in seen:
                    seen.add(binding.rule.id)
                    bindings.append(binding)
        now = self._clock.now()
        slots = [b.slot(now, self._calendar) for b in bindings]
        values = await self._store.read(slots) if slots else []
        return [Counted(b.rule, b.subject, value, slot.ends_at - now)
                for b, slot, value in zip(bindings, slots, values, strict=True)]

    async def watch_store(self, interval: float = 0.5) -> None:
        """Probe the store so it comes back within seconds of recovering (run in a task group)."""
        while True:
            await self._store.healthy()
            await anyio.sleep(interval)

    @staticmethod
    def _with_estimate(binding: Binding, check: Check, estimate: Estimate) -> Check:
        if binding.rule.precheck and binding.rule.metric != "requests":
            return check._replace(estimate=estimate.of(binding.rule.metric))
        return check

    def _store_down(self, operation: str, exc: CounterStoreDown) -> Admission:
        self.unavailable_total.labels(operation).inc()
        if self._policy.fail_mode == "closed" and operation == "admit":
            raise LimiterUnavailable("the rate limiter is unavailable; retry shortly") from exc
        if operation == "admit":
            self.fail_open_total.inc()
        now = self._clock.now()
        if now >= self._quiet_until:  # one line per 10 s, not one per request, while the store is down
            self._quiet_until = now + 10
            log.warning("quota store unavailable during %s (%s): failing open", operation, exc)
        return Admission(fail_open=True)

    async def _fire_thresholds(self, move: BudgetMove, ttl: int) -> None:
        limit = move.rule.limit
        for threshold in self._policy.alert_thresholds:
            line = limit * threshold / 100
            if move.before < line <= move.after:
                key = f"{move.rule.id}:{move.subject}:{move.period_key}:{threshold:g}"
                try:
                    claimed = await self._store.claim_alert(key, ttl)
                except CounterStoreDown:
                    claimed = False
                    log.warning("could not claim budget alert %s: quota store unavailable", key)
                if claimed:
                    await self._alert(ThresholdCrossed(move.rule, move.subject, move.period_key, threshold,
                                                       move.after))
