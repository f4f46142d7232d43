"""The quota engine both surfaces call: ``admit`` before a call, ``charge`` after it.

It turns rules and subjects into counters, asks the counter store, applies the fail-open/fail-closed
policy when the store is down, and fires budget alerts when a charge crosses a threshold.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import anyio
from prometheus_client import CollectorRegistry, Counter

from broker.kernel.clock import Clock
from broker.kernel.quota.errors import CounterStoreDown, LimiterUnavailable, QuotaExceeded, Refusal
from broker.kernel.quota.models import (
    Admission,
    BudgetMove,
    ChargeResult,
    Counted,
    QuotaRequest,
    Rule,
    Subject,
    Surface,
    Usage,
)
from broker.kernel.quota.ports import Add, Check, CounterStore
from broker.kernel.quota.rulebook import RuleBook
from broker.kernel.quota.slots import retry_after, slot_for

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
        self._zone = ZoneInfo(policy.timezone)
        self._alert = alert
        self._quiet_until = 0.0
        self.fail_open_total = Counter("quota_fail_open", "Requests let through because the quota store was"
                                       " unavailable", registry=registry)
        self.unavailable_total = Counter("quota_unavailable", "Quota store operations that failed",
                                         ["operation"], registry=registry)

    async def admit(self, request: QuotaRequest) -> Admission:
        """Check every applicable rule and count the request, or raise naming the rule that refused it."""
        pairs = self.rules.applicable(request.subjects, request.surface)
        if not pairs:
            return Admission()
        now = self._clock.now()
        checks = [self._check(rule, subject, now, request) for rule, subject in pairs]
        try:
            outcome = await self._store.admit(checks)
        except CounterStoreDown as exc:
            return self._store_down("admit", exc)
        if not outcome.allowed:
            assert outcome.failed is not None
            rule, _ = pairs[outcome.failed]
            check = checks[outcome.failed]
            wait = retry_after(check.slot, outcome.oldest[outcome.failed], now)
            raise QuotaExceeded(Refusal(rule.label, rule.limit, outcome.used[outcome.failed],
                                        max(1, math.ceil(wait))))
        counted = tuple(
            Counted(rule, subject, outcome.used[i] + checks[i].cost, checks[i].slot.resets_in)
            for i, (rule, subject) in enumerate(pairs)
        )
        return Admission(counted)

    async def charge(self, surface: Surface, subjects: tuple[Subject, ...], usage: Usage) -> ChargeResult:
        """Add a finished call's tokens and cost to every token and USD rule; fire crossed thresholds."""
        pairs = [(r, s) for r, s in self.rules.applicable(subjects, surface)
                 if r.metric != "requests" and usage.of(r.metric) > 0]
        if not pairs:
            return ChargeResult()
        now = self._clock.now()
        slots = [slot_for(rule, subject, now, self._zone) for rule, subject in pairs]
        try:
            adds = [Add(slot, usage.of(rule.metric)) for slot, (rule, _) in zip(slots, pairs, strict=True)]
            moves = await self._store.charge(adds)
        except CounterStoreDown as exc:
            self._store_down("charge", exc)
            return ChargeResult(fail_open=True)
        budgets = tuple(
            BudgetMove(rule, subject, slot.period_key, before, after)
            for (rule, subject), slot, (before, after) in zip(pairs, slots, moves, strict=True)
            if rule.is_budget
        )
        for move in budgets:
            await self._fire_thresholds(move, slots[pairs.index((move.rule, move.subject))].ttl)
        return ChargeResult(budgets)

    async def usage(self, subject: Subject, surface: Surface | None = None) -> list[Counted]:
        """Every rule on this subject with its current usage ("how much of my budget is left")."""
        surfaces: tuple[Surface, ...] = (surface,) if surface else ("ai", "mcp")
        pairs: list[tuple[Rule, Subject]] = []
        for name in surfaces:
            pairs += [p for p in self.rules.applicable((subject,), name) if p not in pairs]
        now = self._clock.now()
        slots = [slot_for(rule, subj, now, self._zone) for rule, subj in pairs]
        values = await self._store.read(slots) if slots else []
        return [Counted(rule, subj, value, slot.resets_in)
                for (rule, subj), slot, value in zip(pairs, slots, values, strict=True)]

    async def watch_store(self, interval: float = 0.5) -> None:
        """Probe the store so it comes back within seconds of recovering (run in a task group)."""
        while True:
            await self._store.healthy()
            await anyio.sleep(interval)

    def _check(self, rule: Rule, subject: Subject, now: float, request: QuotaRequest) -> Check:
        slot = slot_for(rule, subject, now, self._zone)
        if rule.metric == "requests":
            return Check(slot, rule.limit, 1.0)
        estimate = request.estimate.of(rule.metric) if (rule.precheck and request.estimate) else None
        return Check(slot, rule.limit, 0.0, estimate)

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
        if limit <= 0:
            return
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
