"""Quota rules at rest: created through the management API or reconciled from the configuration file."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import replace
from typing import Any, Literal

from broker.kernel.clock import Clock
from broker.kernel.errors import Conflict, FieldError, InvalidInput, NotFound
from broker.kernel.quota.models import SUBJECT_KINDS, Rule
from broker.kernel.store.ports import Database, Row

Source = Literal["api", "config"]


def rule_from_row(row: Row) -> Rule:
    return Rule(
        id=row["id"], subject_kind=row["subject_kind"], subject_id=row["subject_id"], metric=row["metric"],
        limit=float(row["limit_value"]), window=row["window_name"], period=row["period"], surface=row["surface"],
        enabled=bool(row["enabled"]), precheck=bool(row["precheck"]),
    )


def validate_rule(rule: Rule) -> None:
    """The invariants the database CHECK and the engine rely on, reported field by field."""
    problems = []
    if rule.subject_kind not in SUBJECT_KINDS:
        problems.append(FieldError("subject_kind", f"must be one of {list(SUBJECT_KINDS)}"))
    if (rule.window is None) == (rule.period is None):
        problems.append(FieldError("window", "give exactly one of window (rate limit) or period (budget)"))
    if rule.period is not None and rule.metric == "requests":
        problems.append(FieldError("metric", "budgets count tokens or usd; use a window to limit requests"))
    if rule.limit <= 0:
        problems.append(FieldError("limit", "must be greater than 0"))
    if problems:
        raise InvalidInput("invalid quota rule", problems)


def config_rule_id(rule: Rule) -> str:
    """Rules from the file get an id derived from their content, so reconciling is idempotent."""
    spec = json.dumps([rule.subject_kind, rule.subject_id, rule.metric, rule.window, rule.period, rule.limit,
                       rule.surface, rule.enabled, rule.precheck])
    return "cfg_" + hashlib.sha256(spec.encode()).hexdigest()[:16]


class QuotaRuleStore:
    """CRUD over the ``quota_rules`` table."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def all(self) -> list[Rule]:
        rows = await self._db.fetch("SELECT * FROM quota_rules ORDER BY subject_kind, subject_id, id")
        return [rule_from_row(r) for r in rows]

    async def describe(self) -> list[dict[str, Any]]:
        rows = await self._db.fetch("SELECT * FROM quota_rules ORDER BY subject_kind, subject_id, id")
        return [{"rule": rule_from_row(r), "source": r["source"]} for r in rows]

    async def get(self, rule_id: str) -> tuple[Rule, Source]:
        row = await self._db.fetchrow("SELECT * FROM quota_rules WHERE id = ?", rule_id)
        if row is None:
            raise NotFound(f"quota rule {rule_id!r} not found")
        return rule_from_row(row), row["source"]

    async def create(self, rule: Rule, source: Source = "api") -> Rule:
        validate_rule(rule)
        stored = rule if rule.id else replace(rule, id=uuid.uuid4().hex)
        now = self._clock.now()
        await self._db.execute(
            "INSERT INTO quota_rules (id, subject_kind, subject_id, metric, window_name, period, limit_value,"
            " surface, enabled, precheck, source, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            stored.id, stored.subject_kind, stored.subject_id, stored.metric, stored.window, stored.period,
            stored.limit, stored.surface, stored.enabled, stored.precheck, source, now, now,
        )
        return stored

    async def update(self, rule_id: str, changes: dict[str, Any]) -> Rule:
        current, source = await self.get(rule_id)
        if source == "config":
            raise Conflict("this rule comes from the configuration file; change it there")
        updated = replace(current, **changes)
        validate_rule(updated)
        await self._db.execute(
            "UPDATE quota_rules SET subject_kind = ?, subject_id = ?, metric = ?, window_name = ?, period = ?,"
            " limit_value = ?, surface = ?, enabled = ?, precheck = ?, updated_at = ? WHERE id = ?",
            updated.subject_kind, updated.subject_id, updated.metric, updated.window, updated.period,
            updated.limit, updated.surface, updated.enabled, updated.precheck, self._clock.now(), rule_id,
        )
        return updated

    async def delete(self, rule_id: str) -> None:
        _, source = await self.get(rule_id)
        if source == "config":
            raise Conflict("this rule comes from the configuration file; remove it there")
        await self._db.execute("DELETE FROM quota_rules WHERE id = ?", rule_id)

    async def reconcile_config(self, rules: list[Rule]) -> int:
        """Make the file's rules exactly the ``config`` rules in the store; returns how many changed."""
        wanted = {config_rule_id(r): r for r in rules}
        rows = await self._db.fetch("SELECT id FROM quota_rules WHERE source = 'config'")
        present = {r["id"] for r in rows}
        for stale in present - set(wanted):
            await self._db.execute("DELETE FROM quota_rules WHERE id = ?", stale)
        for rule_id in set(wanted) - present:
            await self.create(replace(wanted[rule_id], id=rule_id), source="config")
        return len(present ^ set(wanted))

