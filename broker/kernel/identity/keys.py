"""API keys: issue, verify, revoke, rotate with a grace period, import keys made elsewhere.

A key is ``wdn_`` + 32 random bytes (base64url). Only an HMAC-SHA256 of it under the server secret and
a short lookup prefix are stored: verification is one indexed lookup by prefix plus a constant-time
compare, and results are cached in-process until a revoke broadcast (or the TTL) drops them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from broker.kernel.bus.ports import Broadcast, Message
from broker.kernel.clock import Clock
from broker.kernel.crypto import KeyHasher, new_token
from broker.kernel.errors import AuthenticationFailed, Conflict, FieldError, InvalidInput, NotFound
from broker.kernel.identity.models import SURFACES, ApiKey, IssuedKey, Surface
from broker.kernel.store.errors import UniqueViolation
from broker.kernel.store.ports import Database, Row

KEY_PREFIX = "wdn_"
LOOKUP_LENGTH = 12  # "wdn_" + 8 characters: 48 bits, enough to make prefix collisions rare
INVALIDATE_CHANNEL = "keys.invalidate"
K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class KeySpec:
    """What a new key is for: its owner, surfaces, models and lifetime."""

    name: str
    owner_user_id: str | None
    owner_team_id: str | None = None
    surfaces: frozenset[Surface] = frozenset({"ai", "mcp"})
    allowed_models: frozenset[str] | None = None
    expires_at: float | None = None
    pinned_accounts: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class VerifiedKey:
    """A key that passed verification, with the owner facts the caller needs."""

    key: ApiKey
    owner_disabled: bool
    team_ids: tuple[str, ...] = ()


def _key(row: Row) -> ApiKey:
    models = json.loads(row["allowed_models"]) if row["allowed_models"] is not None else None
    return ApiKey(
        id=row["id"], name=row["name"], lookup_prefix=row["lookup_prefix"],
        owner_user_id=row["owner_user_id"], owner_team_id=row["owner_team_id"],
        surfaces=frozenset(json.loads(row["surfaces"])),
        allowed_models=frozenset(models) if models is not None else None,
        expires_at=row["expires_at"], revoked_at=row["revoked_at"], disabled_reason=row["disabled_reason"],
        grace_until=row["grace_until"], rotated_to=row["rotated_to"], last_used_at=row["last_used_at"],
        created_at=row["created_at"], pinned_accounts=json.loads(row["pinned_accounts"]),
    )


def validate_spec(spec: KeySpec) -> None:
    problems = []
    if not spec.surfaces:
        problems.append(FieldError("surfaces", "at least one surface is required"))
    if unknown := sorted(set(spec.surfaces) - set(SURFACES)):
        problems.append(FieldError("surfaces", f"unknown surfaces {unknown}; allowed: {list(SURFACES)}"))
    if spec.owner_user_id is None and spec.owner_team_id is None:
        problems.append(FieldError("owner", "a key is owned by a user or a team"))
    if "management" in spec.surfaces and spec.owner_user_id is None:
        problems.append(FieldError("surfaces", "a management key must be owned by a user"))
    if problems:
        raise InvalidInput("invalid API key", problems)


class _Expiring(Generic[K, V]):
    """Entries that expire after a TTL (no caching at all when it is 0)."""

    def __init__(self, ttl: float, clock: Clock) -> None:
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] <= self._clock.now():
            self._entries.pop(key, None)
            return None
        return entry[1]

    def put(self, key: K, value: V) -> None:
        if self._ttl > 0:
            self._entries[key] = (self._clock.now() + self._ttl, value)


class KeyCache(_Expiring[str, VerifiedKey]):
    """Verified keys by digest, dropped on TTL or on an invalidation broadcast."""

    async def on_invalidate(self, message: Message) -> None:
        key_ids = set(message.get("key_ids", ()))
        if message.get("all"):
            self._entries.clear()
            return
        for digest in [d for d, (_, v) in self._entries.items() if v.key.id in key_ids]:
            del self._entries[digest]


class PrincipalCache(_Expiring[str, Any]):
    """Who each recently used key acts as (owner, permissions, teams), so a request needs no identity query.
    Dropped with the key cache: on TTL, and on every invalidation (keys, users, teams and roles changing)."""

    async def on_invalidate(self, message: Message) -> None:
        if message.get("all"):
            self._entries.clear()
            return
        for key_id in message.get("key_ids", ()):
            self._entries.pop(key_id, None)


class ApiKeyRegistry:
    """The API key records and their verification."""

    def __init__(self, db: Database, hasher: KeyHasher, broadcast: Broadcast, clock: Clock,
                 cache: KeyCache) -> None:
        self._db = db
        self._hasher = hasher
        self._broadcast = broadcast
        self._clock = clock
        self._cache = cache
        self._last_used: dict[str, float] = {}
        broadcast.subscribe(INVALIDATE_CHANNEL, cache.on_invalidate)

    async def issue(self, spec: KeySpec, created_by: str | None = None) -> IssuedKey:
        validate_spec(spec)
        secret = KEY_PREFIX + new_token(32)
        key = await self._insert(spec, secret, created_by)
        return IssuedKey(key, secret)

    async def import_secret(self, spec: KeySpec, secret: str, created_by: str | None = None) -> ApiKey:
        """Store a key made elsewhere (CI, benchmarks); idempotent for the same secret."""
        validate_spec(spec)
        if not secret.startswith(KEY_PREFIX) or len(secret) < 36:
            raise InvalidInput("invalid key", [FieldError("secret", "must be 'wdn_' and 32+ characters")])
        row = await self._db.fetchrow("SELECT * FROM api_keys WHERE key_hash = ?", self._hasher.digest(secret))
        if row is not None:
            return _key(row)
        return await self._insert(spec, secret, created_by)

    async def _insert(self, spec: KeySpec, secret: str, created_by: str | None) -> ApiKey:
        key_id = uuid.uuid4().hex
        models = json.dumps(sorted(spec.allowed_models)) if spec.allowed_models is not None else None
        try:
            await self._db.execute(
                "INSERT INTO api_keys (id, name, lookup_prefix, key_hash, owner_user_id, owner_team_id,"
                " surfaces, allowed_models, expires_at, created_at, created_by, pinned_accounts)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                key_id, spec.name, secret[:LOOKUP_LENGTH], self._hasher.digest(secret), spec.owner_user_id,
                spec.owner_team_id, json.dumps(sorted(spec.surfaces)), models, spec.expires_at,
                self._clock.now(), created_by, json.dumps(spec.pinned_accounts, sort_keys=True),
            )
        except UniqueViolation as exc:
            raise Conflict("this key already exists") from exc
        return await self.get(key_id)

    async def get(self, key_id: str) -> ApiKey:
        row = await self._db.fetchrow("SELECT * FROM api_keys WHERE id = ? AND deleted_at IS NULL", key_id)
        if row is None:
            raise NotFound(f"API key {key_id!r} not found")
        return _key(row)

    async def visible(self, owner_user_id: str | None = None, owner_team_ids: Iterable[str] = (),
                      include_all: bool = False) -> list[ApiKey]:
        """All live keys, or those owned by the user or by one of the teams."""
        where, args = "deleted_at IS NULL", []
        if not include_all:
            teams = list(owner_team_ids)
            owners = ["owner_user_id = ?"] + (
                [f"owner_team_id IN ({', '.join('?' * len(teams))})"] if teams else []
            )
            where += f" AND ({' OR '.join(owners)})"
            args = [owner_user_id, *teams]
        rows = await self._db.fetch(f"SELECT * FROM api_keys WHERE {where} ORDER BY created_at DESC", *args)
        return [_key(r) for r in rows]

    async def verify(self, secret: str) -> VerifiedKey:
        """Authenticate a presented key, or raise AuthenticationFailed saying why."""
        if not secret.startswith(KEY_PREFIX) or len(secret) < 36 or len(secret) > 256:
            raise AuthenticationFailed("malformed API key")
        digest = self._hasher.digest(secret)
        verified = self._cache.get(digest)
        if verified is None:
            verified = await self._lookup(secret[:LOOKUP_LENGTH], digest)
            self._cache.put(digest, verified)
        now = self._clock.now()
        state = verified.key.state(now)
        if state not in ("active", "rotating"):
            raise AuthenticationFailed(f"API key is {state.replace('_', ' ')}")
        if verified.owner_disabled:
            raise AuthenticationFailed("the key's owner is disabled")
        self._last_used[verified.key.id] = now
        return verified

    async def _lookup(self, prefix: str, digest: str) -> VerifiedKey:
        rows = await self._db.fetch(
            "SELECT k.*, u.disabled AS user_disabled, u.deleted_at AS user_deleted,"
            " t.deleted_at AS team_deleted FROM api_keys k"
            " LEFT JOIN users u ON u.id = k.owner_user_id LEFT JOIN teams t ON t.id = k.owner_team_id"
            " WHERE k.lookup_prefix = ? AND k.deleted_at IS NULL",
            prefix,
        )
        for row in rows:
            if self._hasher.matches_digest(digest, row["key_hash"]):
                owner_gone = bool(row["user_disabled"]) or row["user_deleted"] is not None \
                    or row["team_deleted"] is not None
                return VerifiedKey(_key(row), owner_gone, await self.teams_of(_key(row)))
        raise AuthenticationFailed("unknown API key")

    async def teams_of(self, key: ApiKey) -> tuple[str, ...]:
        """Teams the key's usage counts against; cached with the key, refreshed on membership changes."""
        if key.owner_team_id is not None:
            return (key.owner_team_id,)
        rows = await self._db.fetch(
            "SELECT m.team_id FROM team_members m JOIN teams t ON t.id = m.team_id"
            " WHERE m.user_id = ? AND t.deleted_at IS NULL ORDER BY m.team_id",
            key.owner_user_id,
        )
        return tuple(r["team_id"] for r in rows)

    async def revoke(self, key_id: str) -> ApiKey:
        key = await self.get(key_id)
        if key.revoked_at is None:
            await self._db.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", self._clock.now(), key_id)
        await self.invalidate([key_id])
        return await self.get(key_id)

    async def rotate(self, key_id: str, grace_seconds: float) -> IssuedKey:
        """Issue a successor with the same settings; the old key keeps working for ``grace_seconds``."""
        old = await self.get(key_id)
        if old.state(self._clock.now()) != "active":
            raise Conflict(f"only an active key can be rotated; this one is {old.state(self._clock.now())}")
        spec = KeySpec(old.name, old.owner_user_id, old.owner_team_id, old.surfaces, old.allowed_models,
                       old.expires_at, old.pinned_accounts)
        issued = await self.issue(spec)
        await self._db.execute(
            "UPDATE api_keys SET grace_until = ?, rotated_to = ? WHERE id = ?",
            self._clock.now() + grace_seconds, issued.key.id, key_id,
        )
        await self.invalidate([key_id])
        return issued

    async def soft_delete(self, key_id: str) -> None:
        await self.get(key_id)
        now = self._clock.now()
        await self._db.execute(
            "UPDATE api_keys SET deleted_at = ?, revoked_at = COALESCE(revoked_at, ?) WHERE id = ?",
            now, now, key_id,
        )
        await self.invalidate([key_id])

    async def invalidate(self, key_ids: list[str] | None = None) -> None:
        """Drop cached verifications on every instance (all of them when ``key_ids`` is None)."""
        message: dict[str, Any] = {"all": True} if key_ids is None else {"key_ids": key_ids}
        await self._broadcast.publish(INVALIDATE_CHANNEL, message)

    async def flush_last_used(self) -> int:
        """Write the last-used times gathered since the previous flush (one write per key, not per call)."""
        pending, self._last_used = self._last_used, {}
        for key_id, at in pending.items():
            await self._db.execute(
                "UPDATE api_keys SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)",
                at, key_id, at,
            )
        return len(pending)
