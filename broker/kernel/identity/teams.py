"""Teams and their membership."""

from __future__ import annotations

import uuid
from typing import Any

from broker.kernel.clock import Clock
from broker.kernel.errors import Conflict, NotFound
from broker.kernel.identity.models import Team, User
from broker.kernel.identity.users import user_from_row
from broker.kernel.store.errors import UniqueViolation
from broker.kernel.store.ports import Database, Row


def _team(row: Row) -> Team:
    return Team(id=row["id"], name=row["name"], description=row["description"], created_at=row["created_at"])


class TeamDirectory:
    """The team records of the identity kernel."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def create(self, name: str, description: str = "") -> Team:
        now = self._clock.now()
        team_id = uuid.uuid4().hex
        try:
            await self._db.execute(
                "INSERT INTO teams (id, name, description, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                team_id, name, description, now, now,
            )
        except UniqueViolation as exc:
            raise Conflict(f"a team named {name!r} already exists") from exc
        return await self.get(team_id)

    async def get(self, team_id: str) -> Team:
        row = await self._db.fetchrow("SELECT * FROM teams WHERE id = ? AND deleted_at IS NULL", team_id)
        if row is None:
            raise NotFound(f"team {team_id!r} not found")
        return _team(row)

    async def find_by_name(self, name: str) -> Team | None:
        row = await self._db.fetchrow("SELECT * FROM teams WHERE name = ? AND deleted_at IS NULL", name)
        return _team(row) if row else None

    async def all(self) -> list[Team]:
        rows = await self._db.fetch("SELECT * FROM teams WHERE deleted_at IS NULL ORDER BY name")
        return [_team(r) for r in rows]

    async def update(self, team_id: str, changes: dict[str, Any]) -> Team:
        await self.get(team_id)
        columns: dict[str, Any] = {k: changes[k] for k in ("name", "description") if k in changes}
        if columns:
            columns["updated_at"] = self._clock.now()
            sets = ", ".join(f"{c} = ?" for c in columns)
            try:
                await self._db.execute(f"UPDATE teams SET {sets} WHERE id = ?", *columns.values(), team_id)
            except UniqueViolation as exc:
                raise Conflict(f"a team named {columns.get('name')!r} already exists") from exc
        return await self.get(team_id)

    async def soft_delete(self, team_id: str) -> None:
        now = self._clock.now()
        changed = await self._db.execute(
            "UPDATE teams SET deleted_at = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL",
            now, now, team_id,
        )
        if not changed:
            raise NotFound(f"team {team_id!r} not found")

    async def add_member(self, team_id: str, user_id: str) -> None:
        await self.get(team_id)
        if await self._db.fetchrow("SELECT 1 AS one FROM users WHERE id = ? AND deleted_at IS NULL", user_id) is None:
            raise NotFound(f"user {user_id!r} not found")
        await self._db.execute(
            "INSERT INTO team_members (team_id, user_id, added_at) VALUES (?, ?, ?)"
            " ON CONFLICT (team_id, user_id) DO NOTHING",
            team_id, user_id, self._clock.now(),
        )

    async def remove_member(self, team_id: str, user_id: str) -> None:
        removed = await self._db.execute(
            "DELETE FROM team_members WHERE team_id = ? AND user_id = ?", team_id, user_id
        )
        if not removed:
            raise NotFound(f"user {user_id!r} is not a member of team {team_id!r}")

    async def members(self, team_id: str) -> list[User]:
        await self.get(team_id)
        rows = await self._db.fetch(
            "SELECT u.* FROM users u JOIN team_members m ON m.user_id = u.id"
            " WHERE m.team_id = ? AND u.deleted_at IS NULL ORDER BY u.email",
            team_id,
        )
        return [user_from_row(r) for r in rows]

    async def of_user(self, user_id: str) -> list[Team]:
        rows = await self._db.fetch(
            "SELECT t.* FROM teams t JOIN team_members m ON m.team_id = t.id"
            " WHERE m.user_id = ? AND t.deleted_at IS NULL ORDER BY t.name",
            user_id,
        )
        return [_team(r) for r in rows]

    async def is_member(self, team_id: str, user_id: str) -> bool:
        row = await self._db.fetchrow(
            "SELECT 1 AS one FROM team_members WHERE team_id = ? AND user_id = ?", team_id, user_id
        )
        return row is not None
