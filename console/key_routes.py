"""``/api/keys``: API keys for the ai, mcp and management surfaces."""

from __future__ import annotations

from typing import Any

from broker.kernel.clock import Clock
from broker.kernel.errors import PermissionDenied
from broker.kernel.identity.keys import KeySpec
from broker.kernel.identity.models import ApiKey, Principal
from broker.kernel.identity.service import Identity, require
from console.endpoints import ApiRoute, Call
from console.schemas import CreateKey, RotateKey
from console.views import key_view

DAY = 86400.0


def may_manage(principal: Principal, key: ApiKey) -> bool:
    """One's own keys always; others with ``keys:manage`` (team-scoped for a team's keys)."""
    if principal.user is not None and key.owner_user_id == principal.user.id:
        return True
    return principal.permissions.allows("keys:manage", key.owner_team_id)


class KeyRoutes:
    """Handlers for API keys; a new key's secret appears in exactly one response."""

    def __init__(self, identity: Identity, clock: Clock, rotation_grace_hours: float) -> None:
        self._identity = identity
        self._clock = clock
        self._grace_hours = rotation_grace_hours

    def routes(self) -> list[ApiRoute]:
        return [
            ApiRoute("GET", "/api/keys", self.index, "Keys visible to the caller", "keys"),
            ApiRoute("POST", "/api/keys", self.create,
                     "Create a key; the secret is in this response only (keys:create / keys:manage)", "keys",
                     body=CreateKey, status=201),
            ApiRoute("GET", "/api/keys/{key_id}", self.get, "One key's metadata", "keys"),
            ApiRoute("POST", "/api/keys/{key_id}/revoke", self.revoke, "Revoke at once, on every instance",
                     "keys"),
            ApiRoute("POST", "/api/keys/{key_id}/rotate", self.rotate,
                     "Issue a successor; the old key works until the grace period ends", "keys", body=RotateKey,
                     status=201),
            ApiRoute("DELETE", "/api/keys/{key_id}", self.delete, "Revoke and soft-delete a key", "keys",
                     status=204),
        ]

    async def index(self, call: Call) -> dict[str, Any]:
        perms = call.actor.permissions
        teams = [t.id for t in await self._identity.teams.all() if perms.allows("keys:read", t.id)]
        keys = await self._identity.keys.visible(call.user_id, teams, include_all=perms.allows("keys:read"))
        now = self._clock.now()
        return {"items": [key_view(k, now) for k in keys]}

    async def create(self, call: Call) -> dict[str, Any]:
        body: CreateKey = call.body
        owner_user = body.owner_user_id if body.owner_user_id or body.owner_team_id else call.user_id
        if body.owner_team_id is not None:
            await self._identity.teams.get(body.owner_team_id)
            require(call.actor, "keys:manage", body.owner_team_id)
        if owner_user is not None and owner_user != call.user_id:
            require(call.actor, "keys:manage")
            await self._identity.users.get(owner_user)
        elif owner_user == call.user_id and not call.actor.permissions.allows("keys:manage"):
            require(call.actor, "keys:create")
        expires = self._clock.now() + body.expires_in_days * DAY if body.expires_in_days else None
        spec = KeySpec(body.name, owner_user, body.owner_team_id, frozenset(body.surfaces),
                       frozenset(body.allowed_models) if body.allowed_models is not None else None, expires,
                       dict(body.pinned_accounts))
        issued = await self._identity.keys.issue(spec, call.user_id)
        return {**key_view(issued.key, self._clock.now()), "secret": issued.secret}

    async def get(self, call: Call) -> dict[str, Any]:
        key = await self._identity.keys.get(call.path("key_id"))
        if not may_manage(call.actor, key) and not call.actor.permissions.allows("keys:read", key.owner_team_id):
            raise PermissionDenied("not your key")
        return key_view(key, self._clock.now())

    async def revoke(self, call: Call) -> dict[str, Any]:
        key = await self._managed(call)
        return key_view(await self._identity.keys.revoke(key.id), self._clock.now())

    async def rotate(self, call: Call) -> dict[str, Any]:
        key = await self._managed(call)
        hours = call.body.grace_hours if call.body.grace_hours is not None else self._grace_hours
        issued = await self._identity.keys.rotate(key.id, hours * 3600)
        return {**key_view(issued.key, self._clock.now()), "secret": issued.secret, "rotated_from": key.id}

    async def delete(self, call: Call) -> None:
        key = await self._managed(call)
        await self._identity.keys.soft_delete(key.id)

    async def _managed(self, call: Call) -> ApiKey:
        key = await self._identity.keys.get(call.path("key_id"))
        if not may_manage(call.actor, key):
            raise PermissionDenied("you may not manage this key")
        return key
