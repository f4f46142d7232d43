"""``/api/settings/<group>``: the settings an admin changes at run time, each group read and replaced whole; a
change is stored and applies on every instance without a restart (``broker.kernel.settings.LiveSettings``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from broker.kernel.identity.service import require
from broker.kernel.settings import LiveSettings
from console.endpoints import ApiRoute, Call


@dataclass(frozen=True, slots=True)
class SettingsGroup:
    path: str  # /api/settings/<path>
    settings: LiveSettings[Any]
    model: type[BaseModel]
    what: str  # what the group holds, for the API's description


class SettingsRoutes:
    def __init__(self, groups: list[SettingsGroup]) -> None:
        self._groups = groups

    def routes(self) -> list[ApiRoute]:
        routes = []
        for group in self._groups:
            routes += [
                ApiRoute("GET", f"/api/settings/{group.path}", self._reader(group), f"{group.what} (settings:manage)",
                         "settings"),
                ApiRoute("PUT", f"/api/settings/{group.path}", self._writer(group), f"Replace: {group.what}; applies"
                         " on every instance without a restart, survives restarts (settings:manage)", "settings",
                         body=group.model),
            ]
        return routes

    @staticmethod
    def _reader(group: SettingsGroup) -> Any:
        async def read(call: Call) -> dict[str, Any]:
            require(call.actor, "settings:manage")
            return group.settings.current.model_dump(mode="json")  # type: ignore[no-any-return]

        return read

    @staticmethod
    def _writer(group: SettingsGroup) -> Any:
        async def write(call: Call) -> dict[str, Any]:
            require(call.actor, "settings:manage")
            await group.settings.update(call.body, call.actor.user.id if call.actor.user else None)
            return group.settings.current.model_dump(mode="json")  # type: ignore[no-any-return]

        return write
