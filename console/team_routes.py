"""``/api/teams``: teams and their membership."""

from __future__ import annotations

from typing import Any

from broker.kernel.identity.service import Identity, require
from console.endpoints import ApiRoute, Call
from console.schemas import CreateTeam, UpdateTeam
from console.views import team_view, user_view


class TeamRoutes:
    """Handlers for teams; team-scoped ``teams:manage`` covers that team's membership and details."""

    def __init__(self, identity: Identity) -> None:
        self._identity = identity

    def routes(self) -> list[ApiRoute]:
        return [
            ApiRoute("GET", "/api/teams", self.index, "List teams (teams:read, or one's own teams)", "teams"),
            ApiRoute("POST", "/api/teams", self.create, "Create a team (teams:manage)", "teams", body=CreateTeam,
                     status=201),
            ApiRoute("GET", "/api/teams/{team_id}", self.get, "One team", "teams"),
            ApiRoute("PATCH", "/api/teams/{team_id}", self.update, "Edit a team (teams:manage in the team)",
                     "teams", body=UpdateTeam),
            ApiRoute("DELETE", "/api/teams/{team_id}", self.delete, "Soft-delete a team (teams:manage)", "teams",
                     status=204),
            ApiRoute("GET", "/api/teams/{team_id}/members", self.members, "A team's members", "teams"),
            ApiRoute("PUT", "/api/teams/{team_id}/members/{user_id}", self.add_member,
                     "Add a member (teams:manage in the team)", "teams", status=204),
            ApiRoute("DELETE", "/api/teams/{team_id}/members/{user_id}", self.remove_member,
                     "Remove a member (teams:manage in the team)", "teams", status=204),
        ]

    async def index(self, call: Call) -> dict[str, Any]:
        if call.actor.permissions.allows("teams:read"):
            teams = await self._identity.teams.all()
        else:
            teams = await self._identity.teams.of_user(call.user_id)
        return {"items": [team_view(t) for t in teams]}

    async def create(self, call: Call) -> dict[str, Any]:
        require(call.actor, "teams:manage")
        body: CreateTeam = call.body
        return team_view(await self._identity.teams.create(body.name, body.description))

    async def get(self, call: Call) -> dict[str, Any]:
        team_id = call.path("team_id")
        await self._require_read(call, team_id)
        return team_view(await self._identity.teams.get(team_id))

    async def update(self, call: Call) -> dict[str, Any]:
        team_id = call.path("team_id")
        require(call.actor, "teams:manage", team_id)
        return team_view(await self._identity.teams.update(team_id, call.body.model_dump(exclude_unset=True)))

    async def delete(self, call: Call) -> None:
        require(call.actor, "teams:manage")
        await self._identity.delete_team(call.path("team_id"))

    async def members(self, call: Call) -> dict[str, Any]:
        team_id = call.path("team_id")
        await self._require_read(call, team_id)
        return {"items": [user_view(u) for u in await self._identity.teams.members(team_id)]}

    async def add_member(self, call: Call) -> None:
        team_id = call.path("team_id")
        require(call.actor, "teams:manage", team_id)
        await self._identity.add_team_member(team_id, call.path("user_id"))

    async def remove_member(self, call: Call) -> None:
        team_id = call.path("team_id")
        require(call.actor, "teams:manage", team_id)
        await self._identity.remove_team_member(team_id, call.path("user_id"))

    async def _require_read(self, call: Call, team_id: str) -> None:
        if not await self._identity.teams.is_member(team_id, call.user_id):
            require(call.actor, "teams:read", team_id)
