"""``/api/users``: people, their status and their role assignments."""

from __future__ import annotations

from typing import Any

from broker.kernel.errors import FieldError, InvalidInput, PermissionDenied
from broker.kernel.identity.service import Identity, require
from console.endpoints import SESSION_COOKIE, ApiRoute, Call
from console.schemas import AssignRole, CreateUser, UpdateUser
from console.views import assignment_view, user_view


def _paging(call: Call) -> tuple[int, int]:
    problems = []
    values = {}
    for name, default, upper in (("limit", 100, 500), ("offset", 0, 10**9)):
        raw = call.request.query_params.get(name, str(default))
        if not raw.isdigit() or not (name == "offset" or 1 <= int(raw) <= upper):
            problems.append(FieldError(f"query.{name}", f"must be an integer between {int(name == 'limit')}"
                                       f" and {upper}"))
        else:
            values[name] = int(raw)
    if problems:
        raise InvalidInput("invalid query parameters", problems)
    return values["limit"], values["offset"]


class UserRoutes:
    """Handlers for users and their role assignments."""

    def __init__(self, identity: Identity) -> None:
        self._identity = identity

    def routes(self) -> list[ApiRoute]:
        return [
            ApiRoute("GET", "/api/users", self.index, "List users (users:read)", "users"),
            ApiRoute("POST", "/api/users", self.create, "Create a user (users:manage)", "users", body=CreateUser,
                     status=201),
            ApiRoute("GET", "/api/users/{user_id}", self.get, "One user (users:read, or oneself)", "users"),
            ApiRoute("PATCH", "/api/users/{user_id}", self.update,
                     "Edit a user (users:manage; oneself: name and password)", "users", body=UpdateUser),
            ApiRoute("DELETE", "/api/users/{user_id}", self.delete,
                     "Soft-delete a user; purged after the retention period (users:manage)", "users", status=204),
            ApiRoute("GET", "/api/users/{user_id}/roles", self.roles, "A user's role assignments (roles:read)",
                     "roles"),
            ApiRoute("POST", "/api/users/{user_id}/roles", self.assign,
                     "Assign a role globally or within a team (roles:manage)", "roles", body=AssignRole,
                     status=201),
            ApiRoute("DELETE", "/api/users/{user_id}/roles/{assignment_id}", self.unassign,
                     "Remove a role assignment (roles:manage)", "roles", status=204),
        ]

    async def index(self, call: Call) -> dict[str, Any]:
        require(call.actor, "users:read")
        limit, offset = _paging(call)
        users = await self._identity.users.page(limit, offset)
        return {"items": [user_view(u) for u in users], "total": await self._identity.users.count()}

    async def create(self, call: Call) -> dict[str, Any]:
        require(call.actor, "users:manage")
        body: CreateUser = call.body
        roles = [await self._identity.roles.get(role_id) for role_id in body.roles]
        user = await self._identity.users.create(body.email, body.name, body.password)
        for role in roles:
            await self._identity.roles.assign(user.id, role.id, None, call.actor.permissions,
                                              call.user_id)
        return user_view(user)

    async def get(self, call: Call) -> dict[str, Any]:
        user_id = call.path("user_id")
        if user_id != call.user_id:
            require(call.actor, "users:read")
        return user_view(await self._identity.users.get(user_id))

    async def update(self, call: Call) -> dict[str, Any]:
        user_id = call.path("user_id")
        changes = call.body.model_dump(exclude_unset=True)
        current_password = changes.pop("current_password", None)
        if user_id == call.user_id and changes.get("password") is not None:
            await self._check_current_password(call, current_password)
        if not (user_id == call.user_id and set(changes) <= {"name", "password"}):
            require(call.actor, "users:manage")
            await self._guard_super_admin(call, user_id)
        keep = call.request.cookies.get(SESSION_COOKIE)
        return user_view(await self._identity.update_user(user_id, changes, keep_session=keep))

    async def _check_current_password(self, call: Call, current_password: str | None) -> None:
        """Changing one's own password needs the current one, so a borrowed session cannot take over."""
        if current_password is None or not await self._identity.users.password_matches(call.user_id,
                                                                                       current_password):
            raise InvalidInput("current password required",
                               [FieldError("current_password", "missing or wrong")])

    async def delete(self, call: Call) -> None:
        user_id = call.path("user_id")
        require(call.actor, "users:manage")
        if user_id == call.user_id:
            raise PermissionDenied("you cannot delete yourself")
        await self._guard_super_admin(call, user_id)
        await self._identity.delete_user(user_id)

    async def roles(self, call: Call) -> dict[str, Any]:
        user_id = call.path("user_id")
        if user_id != call.user_id:
            require(call.actor, "roles:read")
        await self._identity.users.get(user_id)
        return {"items": [assignment_view(a) for a in await self._identity.roles.assignments_of(user_id)]}

    async def assign(self, call: Call) -> dict[str, Any]:
        user_id = call.path("user_id")
        body: AssignRole = call.body
        require(call.actor, "roles:manage", body.team_id)
        await self._identity.users.get(user_id)
        if body.team_id is not None:
            await self._identity.teams.get(body.team_id)
        assignment = await self._identity.roles.assign(
            user_id, body.role_id, body.team_id, call.actor.permissions, call.user_id
        )
        return assignment_view(assignment)

    async def unassign(self, call: Call) -> None:
        require(call.actor, "roles:manage")
        await self._identity.roles.unassign(call.path("assignment_id"), call.actor.permissions,
                                            call.user_id)

    async def _guard_super_admin(self, call: Call, user_id: str) -> None:
        """Only a super admin may change or remove another super admin."""
        target = await self._identity.roles.permissions_of(user_id)
        if target.is_super_admin and not call.actor.permissions.is_super_admin:
            raise PermissionDenied("only a super_admin may change a super_admin")
