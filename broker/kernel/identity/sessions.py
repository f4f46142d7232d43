"""Console sign-in: password login with lockout, server-side sessions with CSRF tokens, logout."""

from __future__ import annotations

import math
from dataclasses import dataclass

from broker.kernel.clock import Clock
from broker.kernel.crypto import new_token, sha256_hex
from broker.kernel.errors import AuthenticationFailed, TooManyAttempts
from broker.kernel.identity.models import User
from broker.kernel.identity.passwords import Passwords
from broker.kernel.identity.users import UserDirectory, normalise_email, user_from_row
from broker.kernel.store.ports import Database


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """How long sessions last and how failed logins are punished."""

    ttl_seconds: float
    bind_ip: bool
    max_failures: int
    lockout_seconds: float


@dataclass(frozen=True, slots=True)
class NewSession:
    """A session just opened: the cookie value exists only here and in the browser."""

    token: str
    csrf_token: str
    user: User
    expires_at: float


@dataclass(frozen=True, slots=True)
class ActiveSession:
    """A session resolved from its cookie."""

    user: User
    csrf_token: str
    expires_at: float


class ConsoleSessions:
    """Sessions are stored by the SHA-256 of their token, so the table alone cannot sign anyone in."""

    def __init__(self, db: Database, users: UserDirectory, passwords: Passwords, clock: Clock,
                 policy: SessionPolicy) -> None:
        self._db = db
        self._users = users
        self._passwords = passwords
        self._clock = clock
        self._policy = policy

    async def login(self, email: str, password: str, client_ip: str | None) -> NewSession:
        email = normalise_email(email)
        await self._refuse_if_locked(email)
        found = await self._users.find_by_email(email)
        ok = await self._passwords.verify(found[1] if found else None, password)
        if not ok or found is None or found[0].disabled:
            await self._count_failure(email)
            raise AuthenticationFailed("wrong email or password")
        await self._db.execute("DELETE FROM login_failures WHERE email = ?", email)
        return await self._open(found[0], client_ip)

    async def open_for(self, user: User, client_ip: str | None) -> NewSession:
        """A session for a user signed in by other means (the identity provider of single sign-on)."""
        if user.disabled:
            raise AuthenticationFailed("account disabled")
        return await self._open(user, client_ip)

    async def _open(self, user: User, client_ip: str | None) -> NewSession:
        token, csrf = new_token(32), new_token(24)
        now = self._clock.now()
        expires = now + self._policy.ttl_seconds
        await self._db.execute(
            "INSERT INTO console_sessions (id_hash, user_id, csrf_token, client_ip, created_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            sha256_hex(token), user.id, csrf, client_ip if self._policy.bind_ip else None, now, expires,
        )
        return NewSession(token, csrf, user, expires)

    async def resolve(self, token: str, client_ip: str | None) -> ActiveSession:
        row = await self._db.fetchrow(
            "SELECT s.csrf_token, s.client_ip, s.expires_at, u.* FROM console_sessions s"
            " JOIN users u ON u.id = s.user_id WHERE s.id_hash = ?",
            sha256_hex(token),
        )
        if row is None or row["expires_at"] <= self._clock.now():
            raise AuthenticationFailed("session expired or unknown; sign in again")
        if row["deleted_at"] is not None or row["disabled"]:
            raise AuthenticationFailed("account disabled")
        if row["client_ip"] is not None and row["client_ip"] != client_ip:
            raise AuthenticationFailed("session is bound to another client address")
        return ActiveSession(user_from_row(row), row["csrf_token"], row["expires_at"])

    async def logout(self, token: str) -> None:
        await self._db.execute("DELETE FROM console_sessions WHERE id_hash = ?", sha256_hex(token))

    async def end_all(self, user_id: str, keep_token: str | None = None) -> int:
        """End every session of the user, except the one whose token is ``keep_token``."""
        keep = sha256_hex(keep_token) if keep_token else ""
        return await self._db.execute(
            "DELETE FROM console_sessions WHERE user_id = ? AND id_hash <> ?", user_id, keep
        )

    async def purge_expired(self) -> int:
        return await self._db.execute("DELETE FROM console_sessions WHERE expires_at <= ?", self._clock.now())

    async def _refuse_if_locked(self, email: str) -> None:
        row = await self._db.fetchrow("SELECT locked_until FROM login_failures WHERE email = ?", email)
        now = self._clock.now()
        if row and row["locked_until"] is not None and row["locked_until"] > now:
            raise TooManyAttempts("too many failed sign-ins; try again later",
                                  retry_after=math.ceil(row["locked_until"] - now))

    async def _count_failure(self, email: str) -> None:
        now = self._clock.now()
        window_start = now - self._policy.lockout_seconds
        async with self._db.transaction() as tx:
            row = await tx.fetchrow("SELECT failures, first_failed_at FROM login_failures WHERE email = ?", email)
            if row is None or row["first_failed_at"] < window_start:
                failures, first = 1, now
            else:
                failures, first = int(row["failures"]) + 1, row["first_failed_at"]
            locked = now + self._policy.lockout_seconds if failures >= self._policy.max_failures else None
            await tx.execute(
                "INSERT INTO login_failures (email, failures, first_failed_at, locked_until) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (email) DO UPDATE SET failures = excluded.failures,"
                " first_failed_at = excluded.first_failed_at, locked_until = excluded.locked_until",
                email, failures if locked is None else 0, first if locked is None else now, locked,
            )
