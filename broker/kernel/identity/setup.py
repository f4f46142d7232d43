"""First-run setup: create the super admin exactly once."""

from __future__ import annotations

from broker.kernel.clock import Clock
from broker.kernel.errors import Conflict
from broker.kernel.identity.models import User
from broker.kernel.identity.roles import RoleCatalog
from broker.kernel.identity.users import UserDirectory
from broker.kernel.store.errors import UniqueViolation
from broker.kernel.store.ports import Database

_MARKER = "setup_completed"


class FirstRunSetup:
    """The unique ``setup_completed`` row is the lock: of two concurrent setups, one wins."""

    def __init__(self, db: Database, users: UserDirectory, roles: RoleCatalog, clock: Clock) -> None:
        self._db = db
        self._users = users
        self._roles = roles
        self._clock = clock

    async def required(self) -> bool:
        row = await self._db.fetchrow("SELECT 1 AS one FROM kernel_settings WHERE key = ?", _MARKER)
        return row is None

    async def create_super_admin(self, email: str, name: str, password: str) -> User:
        if not await self.required():
            raise Conflict("setup is already complete")
        self._users.password_policy.check(password, email)
        try:
            await self._db.execute(
                "INSERT INTO kernel_settings (key, value, updated_at) VALUES (?, ?, ?)",
                _MARKER, email, self._clock.now(),
            )
        except UniqueViolation as exc:
            raise Conflict("setup is already complete") from exc
        try:
            user = await self._claim_or_create(email, name, password)
            await self._roles.assign(user.id, "super_admin")
        except BaseException:
            await self._db.execute("DELETE FROM kernel_settings WHERE key = ?", _MARKER)
            raise
        return user

    async def _claim_or_create(self, email: str, name: str, password: str) -> User:
        """A passwordless user may already exist (the owner of a key declared in the configuration)."""
        found = await self._users.find_by_email(email)
        if found is None:
            return await self._users.create(email, name, password)
        user, password_hash = found
        if password_hash is not None:
            raise Conflict(f"a user with email {email!r} already exists")
        changes: dict[str, object] = {"password": password, "disabled": False}
        if name:
            changes["name"] = name
        return await self._users.update(user.id, changes)
