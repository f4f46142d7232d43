"""``/api/roles``: built-in tiers, custom roles, the permission catalogue, history, export and import."""

from __future__ import annotations

from typing import Any

from broker.kernel.identity.permissions import PERMISSIONS
from broker.kernel.identity.service import Identity, require
from console.endpoints import ApiRoute, Call
from console.schemas import CloneRole, CreateRole, RolesDocument, UpdateRole
from console.views import role_view


class RoleRoutes:
    """Handlers for roles."""

    def __init__(self, identity: Identity) -> None:
        self._identity = identity

    def routes(self) -> list[ApiRoute]:
        return [
            ApiRoute("GET", "/api/permissions", self.permissions, "The permission catalogue", "roles"),
            ApiRoute("GET", "/api/roles", self.index, "List roles (roles:read)", "roles"),
            ApiRoute("POST", "/api/roles", self.create, "Create a custom role (roles:manage)", "roles",
                     body=CreateRole, status=201),
            ApiRoute("GET", "/api/roles/history", self.history, "Who changed which role, when (roles:read)",
                     "roles"),
            ApiRoute("GET", "/api/roles/export", self.export, "Custom roles and assignments as JSON (roles:read)",
                     "roles"),
            ApiRoute("POST", "/api/roles/import", self.import_, "Import roles and assignments (roles:manage)",
                     "roles", body=RolesDocument),
            ApiRoute("GET", "/api/roles/{role_id}", self.get, "One role (roles:read)", "roles"),
            ApiRoute("PATCH", "/api/roles/{role_id}", self.update, "Edit a custom role (roles:manage)", "roles",
                     body=UpdateRole),
            ApiRoute("DELETE", "/api/roles/{role_id}", self.delete, "Delete a custom role (roles:manage)", "roles",
                     status=204),
            ApiRoute("POST", "/api/roles/{role_id}/clone", self.clone,
                     "Copy a role's permissions into a new custom role (roles:manage)", "roles", body=CloneRole,
                     status=201),
        ]

    async def permissions(self, call: Call) -> dict[str, Any]:
        return {"items": [{"name": n, "description": d} for n, d in PERMISSIONS.items()]}

    async def index(self, call: Call) -> dict[str, Any]:
        require(call.actor, "roles:read")
        return {"items": [role_view(r) for r in await self._identity.roles.all()]}

    async def get(self, call: Call) -> dict[str, Any]:
        require(call.actor, "roles:read")
        return role_view(await self._identity.roles.get(call.path("role_id")))

    async def create(self, call: Call) -> dict[str, Any]:
        require(call.actor, "roles:manage")
        body: CreateRole = call.body
        role = await self._identity.roles.create(body.name, body.permissions, body.description, call.user_id)
        return role_view(role)

    async def update(self, call: Call) -> dict[str, Any]:
        require(call.actor, "roles:manage")
        changes = call.body.model_dump(exclude_unset=True)
        return role_view(await self._identity.roles.update(call.path("role_id"), changes, call.user_id))

    async def delete(self, call: Call) -> None:
        require(call.actor, "roles:manage")
        await self._identity.roles.delete(call.path("role_id"), call.user_id)

    async def clone(self, call: Call) -> dict[str, Any]:
        require(call.actor, "roles:manage")
        source = await self._identity.roles.get(call.path("role_id"))
        permissions = sorted(source.permissions - {"*"}) if "*" not in source.permissions else sorted(PERMISSIONS)
        role = await self._identity.roles.create(call.body.name, permissions, source.description, call.user_id)
        return role_view(role)

    async def history(self, call: Call) -> dict[str, Any]:
        require(call.actor, "roles:read")
        return {"items": await self._identity.roles.history()}

    async def export(self, call: Call) -> dict[str, Any]:
        require(call.actor, "roles:read")
        return await self._identity.roles.export()

    async def import_(self, call: Call) -> dict[str, Any]:
        require(call.actor, "roles:manage")
        document = call.body.model_dump()
        return await self._identity.roles.import_(
            document, self._identity.user_by_email, self._identity.team_by_name, call.actor.permissions,
            call.user_id,
        )
