"""The identity kernel as one object: its parts, plus the operations that span several of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from broker.kernel.errors import AuthenticationFailed, NotFound, PermissionDenied
from broker.kernel.identity.keys import ApiKeyRegistry, PrincipalCache
from broker.kernel.identity.models import ApiKey, Permissions, Principal, Surface, User
from broker.kernel.identity.roles import RoleCatalog
from broker.kernel.identity.sessions import ActiveSession, ConsoleSessions
from broker.kernel.identity.setup import FirstRunSetup
from broker.kernel.identity.teams import TeamDirectory
from broker.kernel.identity.users import UserDirectory


@dataclass(frozen=True, slots=True)
class Identity:
    """Users, teams, roles, API keys and console sessions."""

    users: UserDirectory
    teams: TeamDirectory
    roles: RoleCatalog
    keys: ApiKeyRegistry
    sessions: ConsoleSessions
    setup: FirstRunSetup
    principals: PrincipalCache

    async def principal_for_key(self, secret: str, surface: Surface) -> Principal:
        """Authenticate an API key for one surface (401 when unknown or dead, 403 without the surface)."""
        verified = await self.keys.verify(secret)
        key = verified.key
        if surface not in key.surfaces:
            raise PermissionDenied(f"this API key may not use the {surface!r} surface")
        cached = self.principals.get(key.id)
        if isinstance(cached, Principal) and cached.key == key:
            return cached
        principal = await self._acting_as(key, verified.team_ids)
        self.principals.put(key.id, principal)
        return principal

    async def principal_for_session(self, token: str, client_ip: str | None) -> tuple[Principal, ActiveSession]:
        session = await self.sessions.resolve(token, client_ip)
        permissions = await self.roles.permissions_of(session.user.id)
        teams = tuple(t.id for t in await self.teams.of_user(session.user.id))
        return Principal(session.user, None, None, permissions, "session", teams), session

    async def principal_for_user(self, user_id: str) -> Principal:
        """The principal of a user signed in elsewhere (an OAuth access token to /mcp): their own permissions
        and teams, refused when the user is gone or disabled."""
        try:
            user = await self.users.get(user_id)
        except NotFound:
            raise AuthenticationFailed("the user of this token no longer exists") from None
        if user.disabled:
            raise AuthenticationFailed("the user of this token is disabled")
        permissions = await self.roles.permissions_of(user.id)
        teams = tuple(t.id for t in await self.teams.of_user(user.id))
        return Principal(user, None, None, permissions, "oauth", teams)

    async def principal_of_key(self, key_id: str) -> Principal:
        """The principal a key acts as, looked up by id (to explain what it may do; no secret involved)."""
        key = await self.keys.get(key_id)
        return await self._acting_as(key, await self.keys.teams_of(key))

    async def _acting_as(self, key: ApiKey, team_ids: tuple[str, ...]) -> Principal:
        """The principal of a key: its owner user (if any) with that user's permissions."""
        user = await self.users.get(key.owner_user_id) if key.owner_user_id else None
        permissions = await self.roles.permissions_of(user.id) if user else Permissions()
        return Principal(user, key.owner_team_id, key, permissions, "api_key", team_ids)

    async def update_user(self, user_id: str, changes: dict[str, Any], keep_session: str | None = None) -> User:
        """Apply changes; a new password ends the user's other console sessions."""
        user = await self.users.update(user_id, changes)
        if "disabled" in changes:
            await self.keys.invalidate()
        if changes.get("password") is not None:
            await self.sessions.end_all(user_id, keep_token=keep_session)
        return user

    async def delete_user(self, user_id: str) -> None:
        await self.users.soft_delete(user_id)
        await self.keys.invalidate()

    async def delete_team(self, team_id: str) -> None:
        await self.teams.soft_delete(team_id)
        await self.keys.invalidate()

    async def add_team_member(self, team_id: str, user_id: str) -> None:
        await self.teams.add_member(team_id, user_id)
        await self.keys.invalidate()  # cached keys carry their owner's teams

    async def remove_team_member(self, team_id: str, user_id: str) -> None:
        await self.teams.remove_member(team_id, user_id)
        await self.keys.invalidate()

    async def user_by_email(self, email: str) -> str:
        found = await self.users.find_by_email(email)
        if found is None:
            raise NotFound(f"no user with email {email!r}")
        return found[0].id

    async def team_by_name(self, name: str) -> str:
        team = await self.teams.find_by_name(name)
        if team is None:
            raise NotFound(f"no team named {name!r}")
        return team.id



def require(principal: Principal, permission: str, team_id: str | None = None) -> None:
    """Raise PermissionDenied unless the principal holds ``permission`` (globally or in ``team_id``)."""
    if principal.user is None:
        raise AuthenticationFailed("this credential does not act as a user")
    if not principal.permissions.allows(permission, team_id):
        raise PermissionDenied(f"missing permission {permission!r}")


def require_somewhere(principal: Principal, permission: str) -> None:
    """Raise PermissionDenied unless the principal holds ``permission`` globally or in at least one team (what
    it then may see is narrowed to those teams)."""
    if principal.user is None:
        raise AuthenticationFailed("this credential does not act as a user")
    if not principal.permissions.allows_somewhere(permission):
        raise PermissionDenied(f"missing permission {permission!r}")
