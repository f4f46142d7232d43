"""Periodic upkeep of identity records: purge, inactivity, expiry warnings, sessions, last-used times.

Every step is idempotent, so several instances may run it at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from broker.kernel.clock import Clock
from broker.kernel.events import KernelEvents
from broker.kernel.identity.keys import ApiKeyRegistry
from broker.kernel.identity.sessions import ConsoleSessions
from broker.kernel.store.ports import Database

log = logging.getLogger(__name__)
DAY = 86400.0


@dataclass(frozen=True, slots=True)
class UpkeepPolicy:
    """Retention and key-lifecycle settings."""

    purge_after_days: int
    inactivity_days: int
    expiry_warning_days: int


@dataclass(frozen=True, slots=True)
class UpkeepReport:
    """What one pass changed."""

    purged: int
    disabled_inactive: int
    expiry_warnings: int
    sessions_expired: int


class IdentityUpkeep:
    """One pass of maintenance over the identity tables."""

    def __init__(self, db: Database, keys: ApiKeyRegistry, sessions: ConsoleSessions, events: KernelEvents,
                 clock: Clock, policy: UpkeepPolicy) -> None:
        self._db = db
        self._keys = keys
        self._sessions = sessions
        self._events = events
        self._clock = clock
        self._policy = policy

    async def run_once(self) -> UpkeepReport:
        await self._keys.flush_last_used()
        return UpkeepReport(
            purged=await self._purge(),
            disabled_inactive=await self._disable_inactive(),
            expiry_warnings=await self._warn_expiring(),
            sessions_expired=await self._sessions.purge_expired(),
        )

    async def _purge(self) -> int:
        """Hard-delete users, teams and keys soft-deleted longer ago than the retention period."""
        cutoff = self._clock.now() - self._policy.purge_after_days * DAY
        purged = 0
        async with self._db.transaction() as tx:
            purged += await tx.execute(
                "DELETE FROM api_keys WHERE (deleted_at IS NOT NULL AND deleted_at < ?)"
                " OR owner_user_id IN (SELECT id FROM users WHERE deleted_at < ?)"
                " OR owner_team_id IN (SELECT id FROM teams WHERE deleted_at < ?)",
                cutoff, cutoff, cutoff,
            )
            purged += await tx.execute("DELETE FROM users WHERE deleted_at IS NOT NULL AND deleted_at < ?", cutoff)
            purged += await tx.execute("DELETE FROM teams WHERE deleted_at IS NOT NULL AND deleted_at < ?", cutoff)
        return purged

    async def _disable_inactive(self) -> int:
        if self._policy.inactivity_days <= 0:
            return 0
        cutoff = self._clock.now() - self._policy.inactivity_days * DAY
        rows = await self._db.fetch(
            "SELECT id, name FROM api_keys WHERE deleted_at IS NULL AND revoked_at IS NULL"
            " AND disabled_reason IS NULL AND COALESCE(last_used_at, created_at) < ?",
            cutoff,
        )
        for row in rows:
            await self._db.execute(
                "UPDATE api_keys SET disabled_reason = 'inactive' WHERE id = ? AND disabled_reason IS NULL",
                row["id"],
            )
            await self._events.emit("api_key.disabled_inactive", row["id"],
                                    {"name": row["name"], "inactivity_days": self._policy.inactivity_days})
        if rows:
            await self._keys.invalidate([r["id"] for r in rows])
        return len(rows)

    async def _warn_expiring(self) -> int:
        if self._policy.expiry_warning_days <= 0:
            return 0
        now = self._clock.now()
        rows = await self._db.fetch(
            "SELECT id, name, expires_at, owner_user_id, owner_team_id FROM api_keys"
            " WHERE deleted_at IS NULL AND revoked_at IS NULL AND expiry_warned_at IS NULL"
            " AND expires_at IS NOT NULL AND expires_at > ? AND expires_at <= ?",
            now, now + self._policy.expiry_warning_days * DAY,
        )
        for row in rows:
            # Mark first: if two instances race, only the one whose UPDATE changed the row emits.
            claimed = await self._db.execute(
                "UPDATE api_keys SET expiry_warned_at = ? WHERE id = ? AND expiry_warned_at IS NULL", now, row["id"]
            )
            if claimed:
                await self._events.emit("api_key.expiring", row["id"], {
                    "name": row["name"], "expires_at": row["expires_at"],
                    "owner_user_id": row["owner_user_id"], "owner_team_id": row["owner_team_id"],
                })
        return len(rows)
