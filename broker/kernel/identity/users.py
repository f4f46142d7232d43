"""Users: create, list, edit, disable, soft-delete."""

from __future__ import annotations

import uuid
from typing import Any

from broker.kernel.clock import Clock
from broker.kernel.errors import Conflict, NotFound
from broker.kernel.identity.models import User
from broker.kernel.identity.passwords import PasswordPolicy, Passwords
from broker.kernel.store.errors import UniqueViolation
from broker.kernel.store.ports import Database, Row

_LIVE = "deleted_at IS NULL"


def user_from_row(row: Row) -> User:
    return User(
        id=row["id"], email=row["email"], name=row["name"], disabled=bool(row["disabled"]),
        created_at=row["created_at"], has_password=row["password_hash"] is not None,
    )


def normalise_email(email: str) -> str:
    return email.strip().lower()


class UserDirectory:
    """The user records of the identity kernel."""

    def __init__(self, db: Database, passwords: Passwords, clock: Clock) -> None:
        self._db = db
        self._passwords = passwords
        self._clock = clock

    @property
    def password_policy(self) -> PasswordPolicy:
        return self._passwords.policy

    async def create(self, email: str, name: str = "", password: str | None = None) -> User:
        email = normalise_email(email)
        password_hash = None
        if password is not None:
            self._passwords.policy.check(password, email)
            password_hash = await self._passwords.hash(password)
        now = self._clock.now()
        user_id = uuid.uuid4().hex
        try:
            await self._db.execute(
                "INSERT INTO users (id, email, name, password_hash, disabled, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                user_id, email, name, password_hash, False, now, now,
            )
        except UniqueViolation as exc:
            raise Conflict(f"a user with email {email!r} already exists") from exc
        return await self.get(user_id)

    async def get(self, user_id: str) -> User:
        row = await self._db.fetchrow(f"SELECT * FROM users WHERE id = ? AND {_LIVE}", user_id)
        if row is None:
            raise NotFound(f"user {user_id!r} not found")
        return user_from_row(row)

    async def find_by_email(self, email: str) -> tuple[User, str | None] | None:
        """The live user with this email and its password hash, if any."""
        row = await self._db.fetchrow(
            f"SELECT * FROM users WHERE email = ? AND {_LIVE}", normalise_email(email)
        )
        return (user_from_row(row), row["password_hash"]) if row else None

    async def password_matches(self, user_id: str, password: str) -> bool:
        row = await self._db.fetchrow(f"SELECT password_hash FROM users WHERE id = ? AND {_LIVE}", user_id)
        return await self._passwords.verify(row["password_hash"] if row else None, password)

    async def page(self, limit: int = 100, offset: int = 0) -> list[User]:
        rows = await self._db.fetch(
            f"SELECT * FROM users WHERE {_LIVE} ORDER BY email LIMIT ? OFFSET ?", limit, offset
        )
        return [user_from_row(r) for r in rows]

    async def count(self) -> int:
        row = await self._db.fetchrow(f"SELECT COUNT(*) AS n FROM users WHERE {_LIVE}")
        return int(row["n"]) if row else 0

    async def update(self, user_id: str, changes: dict[str, Any]) -> User:
        """Apply ``name``, ``email``, ``disabled`` and ``password`` changes that are present."""
        user = await self.get(user_id)
        columns: dict[str, Any] = {}
        if "name" in changes:
            columns["name"] = changes["name"]
        if "email" in changes:
            columns["email"] = normalise_email(changes["email"])
        if "disabled" in changes:
            columns["disabled"] = bool(changes["disabled"])
        if changes.get("password") is not None:
            self._passwords.policy.check(changes["password"], columns.get("email", user.email))
            columns["password_hash"] = await self._passwords.hash(changes["password"])
        if not columns:
            return user
        columns["updated_at"] = self._clock.now()
        assignments = ", ".join(f"{c} = ?" for c in columns)
        try:
            await self._db.execute(
                f"UPDATE users SET {assignments} WHERE id = ? AND {_LIVE}", *columns.values(), user_id
            )
        except UniqueViolation as exc:
            raise Conflict(f"a user with email {columns.get('email')!r} already exists") from exc
        return await self.get(user_id)

    async def soft_delete(self, user_id: str) -> None:
        """Hide and disable the user now; the record is purged after the retention period."""
        now = self._clock.now()
        changed = await self._db.execute(
            f"UPDATE users SET deleted_at = ?, disabled = ?, updated_at = ? WHERE id = ? AND {_LIVE}",
            now, True, now, user_id,
        )
        if not changed:
            raise NotFound(f"user {user_id!r} not found")
        await self._db.execute("DELETE FROM console_sessions WHERE user_id = ?", user_id)
