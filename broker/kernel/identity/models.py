"""Identity values: users, teams, roles, API keys and the principal a request acts as."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Surface = Literal["ai", "mcp", "management"]
SURFACES: tuple[Surface, ...] = ("ai", "mcp", "management")


@dataclass(frozen=True, slots=True)
class User:
    """A person who signs in to the console or owns API keys."""

    id: str
    email: str
    name: str
    disabled: bool
    created_at: float
    has_password: bool


@dataclass(frozen=True, slots=True)
class Team:
    """A group of users that can own keys and carry team-scoped roles."""

    id: str
    name: str
    description: str
    created_at: float


@dataclass(frozen=True, slots=True)
class Role:
    """A named set of permissions; built-in tiers cannot be edited or deleted."""

    id: str
    name: str
    description: str
    permissions: frozenset[str]
    builtin: bool


@dataclass(frozen=True, slots=True)
class RoleAssignment:
    """A role given to a user, globally (``team_id`` None) or within one team."""

    id: str
    user_id: str
    role_id: str
    team_id: str | None
    created_at: float


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key's record; the secret itself is never stored."""

    id: str
    name: str
    lookup_prefix: str
    owner_user_id: str | None
    owner_team_id: str | None
    surfaces: frozenset[Surface]
    allowed_models: frozenset[str] | None
    expires_at: float | None
    revoked_at: float | None
    disabled_reason: str | None
    grace_until: float | None
    rotated_to: str | None
    last_used_at: float | None
    created_at: float
    # upstream server -> account label: calls to that server run with that account only, never another.
    pinned_accounts: dict[str, str] = field(default_factory=dict)

    def state(self, now: float) -> str:
        """``active``, ``rotating`` (old half of a rotation), or why the key no longer works."""
        if self.revoked_at is not None:
            return "revoked"
        if self.disabled_reason is not None:
            return f"disabled_{self.disabled_reason}"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        if self.grace_until is not None:
            return "rotating" if now < self.grace_until else "rotated"
        return "active"


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A key just created: the only moment its secret exists outside the client."""

    key: ApiKey
    secret: str


@dataclass(frozen=True, slots=True)
class Permissions:
    """What a user may do: permissions held everywhere, plus those held only within given teams."""

    global_: frozenset[str] = frozenset()
    by_team: dict[str, frozenset[str]] = field(default_factory=dict)
    role_ids: frozenset[str] = frozenset()  # roles held globally (MCP access rules may name them)

    def allows(self, permission: str, team_id: str | None = None) -> bool:
        if "*" in self.global_ or permission in self.global_:
            return True
        if team_id is None:
            return False
        scoped = self.by_team.get(team_id, frozenset())
        return "*" in scoped or permission in scoped

    def allows_somewhere(self, permission: str) -> bool:
        return self.allows(permission) or any(permission in p or "*" in p for p in self.by_team.values())

    @property
    def is_super_admin(self) -> bool:
        return "*" in self.global_


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as: a user (by session or key) or a team (by a team-owned key)."""

    user: User | None
    team_id: str | None
    key: ApiKey | None
    permissions: Permissions
    via: Literal["session", "api_key", "oauth"]
    team_ids: tuple[str, ...] = ()  # the teams usage is attributed to: the key's team, or the user's teams

    @property
    def actor_id(self) -> str | None:
        return self.user.id if self.user else None
