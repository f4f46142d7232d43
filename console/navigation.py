"""The console's pages and who may open them: one table the server's page gate and the navigation both read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from broker.edge.health import HealthChecks
from broker.kernel.identity.models import Permissions
from console.endpoints import ApiRoute, Call


@dataclass(frozen=True, slots=True)
class ConsolePage:
    """A page of the single-page console at ``path`` (and below it, e.g. ``/teams/<id>``)."""

    path: str
    label: str  # the translation key of its navigation label
    group: str  # the navigation section it is listed under
    # Opening it needs one of these (globally or within some team); none: every signed-in user.
    any_of: tuple[str, ...] = ()

    def open_to(self, permissions: Permissions) -> bool:
        return not self.any_of or any(permissions.allows_somewhere(p) for p in self.any_of)


CONSOLE_PAGES: tuple[ConsolePage, ...] = (
    ConsolePage("/", "nav.overview", "overview"),
    ConsolePage("/dashboard", "nav.dashboard", "overview", ("audit:read",)),
    ConsolePage("/logs", "nav.logs", "overview", ("audit:read",)),
    ConsolePage("/servers", "nav.servers", "gateway", ("mcp_servers:read",)),
    ConsolePage("/store", "nav.store", "gateway", ("mcp_servers:read",)),
    ConsolePage("/connections", "nav.connections", "gateway"),
    ConsolePage("/providers", "nav.providers", "gateway", ("providers:read",)),
    ConsolePage("/users", "nav.users", "access", ("users:read",)),
    ConsolePage("/teams", "nav.teams", "access", ("teams:read",)),
    ConsolePage("/roles", "nav.roles", "access", ("roles:read",)),
    ConsolePage("/keys", "nav.keys", "access", ("keys:create", "keys:read", "keys:manage")),
    ConsolePage("/quotas", "nav.quotas", "access", ("quotas:manage",)),
    ConsolePage("/settings", "nav.settings", "system", ("settings:manage",)),
    ConsolePage("/trail", "nav.trail", "system", ("audit:read",)),
    ConsolePage("/guide", "nav.guide", "overview"),
)


def page_for(path: str) -> ConsolePage | None:
    """The page a browser path belongs to: the page itself, or one of its sub-paths (``/teams/<id>``)."""
    for page in CONSOLE_PAGES:
        if path == page.path or (page.path != "/" and path.startswith(page.path + "/")):
            return page
    return None


class NavigationRoutes:
    """What the signed-in user's navigation lists (exactly the pages the server would open for them), and the
    dependencies' health the console's header and dashboard show."""

    def __init__(self, health: HealthChecks, gateway_url: str, gateway_url_is_public: bool) -> None:
        self._health = health
        self._gateway = {"url": gateway_url, "public": gateway_url_is_public}

    def routes(self) -> list[ApiRoute]:
        return [ApiRoute("GET", "/api/console/pages", self.pages,
                         "The console pages the caller may open, for its navigation", "session"),
                ApiRoute("GET", "/api/console/health", self.health, "The database's, Redis's and ClickHouse's"
                         " health as the gateway's readiness sees it (any signed-in user)", "session"),
                ApiRoute("GET", "/api/console/gateway", self.gateway, "The gateway's address for client set-up:"
                         " server.gateway_public_url when configured (public: true), else the listener's", "session")]

    async def gateway(self, call: Call) -> dict[str, Any]:
        return self._gateway

    async def health(self, call: Call) -> dict[str, Any]:
        return {"checks": await self._health.results()}

    async def pages(self, call: Call) -> dict[str, Any]:
        permissions = call.actor.permissions
        return {"items": [{"path": page.path, "label": page.label, "group": page.group}
                          for page in CONSOLE_PAGES if page.open_to(permissions)]}
