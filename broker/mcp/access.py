"""Which tools a caller may see and call: allow-lists on roles, teams, users and API keys.

A caller's grants are the patterns on its global roles, its teams and its user; when none of them has a
rule, the configured default (allow or deny everything) applies. Patterns on the API key itself narrow
the grants: a key restricted to ``github__*`` never reaches another server, whatever its user may do.
The catalog a client lists is exactly the set this policy lets it call.
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

from broker.kernel.clock import Clock
from broker.kernel.errors import Conflict, FieldError, InvalidInput, NotFound
from broker.kernel.identity.models import Principal
from broker.kernel.store.errors import UniqueViolation
from broker.kernel.store.ports import Database, Row

AccessSubject = Literal["role", "team", "user", "api_key"]
ACCESS_SUBJECTS: tuple[AccessSubject, ...] = ("role", "team", "user", "api_key")
_PATTERN = re.compile(r"^(\*|[a-z0-9][a-z0-9_-]*__(\*|[^\s*]+))$")


@dataclass(frozen=True, slots=True)
class AccessRule:
    """One allow-list entry."""

    id: str
    subject_kind: AccessSubject
    subject_id: str
    pattern: str


@dataclass(frozen=True, slots=True)
class AccessDecision:
    """Whether a tool is visible and callable, and the rule (or its absence) that decided."""

    allowed: bool
    reason: str


def matches(pattern: str, tool: str) -> bool:
    if pattern == "*":
        return True
    if pattern.endswith("__*"):
        return tool.startswith(pattern[:-1])
    return pattern == tool


def validate_pattern(pattern: str) -> None:
    if not _PATTERN.match(pattern):
        raise InvalidInput("invalid pattern", [FieldError("pattern", "use server__tool, server__* or *")])


class AccessPolicy:
    """The rules in memory, indexed by subject; ``decide`` is called for every listed and called tool."""

    def __init__(self, default_allow: bool) -> None:
        self.default_allow = default_allow
        self._rules: dict[tuple[str, str], list[AccessRule]] = defaultdict(list)

    def replace(self, rules: list[AccessRule]) -> None:
        index: dict[tuple[str, str], list[AccessRule]] = defaultdict(list)
        for rule in rules:
            index[(rule.subject_kind, rule.subject_id)].append(rule)
        self._rules = index

    def decide(self, principal: Principal, tool: str) -> AccessDecision:
        grants = self._grants(principal)
        if grants:
            granted = next((r for r in grants if matches(r.pattern, tool)), None)
            if granted is None:
                return AccessDecision(False, "no allow rule of the caller's roles, teams or user matches")
            reason = f"allowed by {granted.subject_kind} rule {granted.pattern!r}"
        elif self.default_allow:
            reason = "no rules apply to the caller; the default allows every tool"
        else:
            return AccessDecision(False, "no rules apply to the caller and the default denies")
        if principal.key is not None:
            restrictions = self._rules.get(("api_key", principal.key.id), [])
            if restrictions and not any(matches(r.pattern, tool) for r in restrictions):
                return AccessDecision(False, "the API key's own allow-list excludes it")
        return AccessDecision(True, reason)

    def _grants(self, principal: Principal) -> list[AccessRule]:
        subjects = [("role", role) for role in sorted(principal.permissions.role_ids)]
        subjects += [("team", team) for team in principal.team_ids]
        if principal.user is not None:
            subjects.append(("user", principal.user.id))
        return [rule for subject in subjects for rule in self._rules.get(subject, [])]


def _rule(row: Row) -> AccessRule:
    return AccessRule(row["id"], row["subject_kind"], row["subject_id"], row["pattern"])


class AccessRuleStore:
    """CRUD over ``mcp_access_rules``."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def all(self) -> list[AccessRule]:
        rows = await self._db.fetch("SELECT * FROM mcp_access_rules ORDER BY subject_kind, subject_id, pattern")
        return [_rule(r) for r in rows]

    async def create(self, subject_kind: str, subject_id: str, pattern: str,
                     created_by: str | None = None, source: str = "api") -> AccessRule:
        if subject_kind not in ACCESS_SUBJECTS:
            raise InvalidInput("invalid subject", [FieldError("subject_kind",
                                                              f"must be one of {list(ACCESS_SUBJECTS)}")])
        validate_pattern(pattern)
        rule = AccessRule(uuid.uuid4().hex, subject_kind, subject_id, pattern)
        try:
            await self._db.execute(
                "INSERT INTO mcp_access_rules (id, subject_kind, subject_id, pattern, created_at, created_by, source)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                rule.id, subject_kind, subject_id, pattern, self._clock.now(), created_by, source,
            )
        except UniqueViolation as exc:
            raise Conflict("this rule already exists") from exc
        return rule

    async def delete(self, rule_id: str) -> None:
        row = await self._db.fetchrow("SELECT source FROM mcp_access_rules WHERE id = ?", rule_id)
        if row is None:
            raise NotFound(f"access rule {rule_id!r} not found")
        if row["source"] == "config":
            raise Conflict("this rule comes from the configuration file; remove it there")
        await self._db.execute("DELETE FROM mcp_access_rules WHERE id = ?", rule_id)

    async def reconcile_config(self, wanted: list[tuple[str, str, str]]) -> None:
        """Make ``(subject_kind, subject_id, pattern)`` the store's ``config`` rules."""
        rows = await self._db.fetch("SELECT * FROM mcp_access_rules WHERE source = 'config'")
        present = {(r["subject_kind"], r["subject_id"], r["pattern"]): r["id"] for r in rows}
        for spec, rule_id in present.items():
            if spec not in wanted:
                await self._db.execute("DELETE FROM mcp_access_rules WHERE id = ?", rule_id)
        for spec in wanted:
            if spec not in present:
                try:
                    await self.create(*spec, source="config")
                except Conflict:
                    # The same rule made through the API: the file now owns it.
                    await self._db.execute(
                        "UPDATE mcp_access_rules SET source = 'config' WHERE subject_kind = ? AND subject_id = ?"
                        " AND pattern = ?", *spec)
