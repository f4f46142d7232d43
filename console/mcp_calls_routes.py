"""``/api/mcp/calls``: the audited tool calls with their timelines (start, progress events, end)."""

from __future__ import annotations

from typing import Any

from broker.kernel.audit.adapters.store import AuditQuery
from broker.kernel.audit.adapters.store_search import AuditFilter
from broker.kernel.audit.ports import AuditSearch
from broker.kernel.errors import NotFound
from broker.kernel.identity.service import require
from console.endpoints import ApiRoute, Call, query_integer


class McpCallRoutes:
    """Read-only views of MCP call audit events (``audit:read``)."""

    def __init__(self, audit: AuditQuery, search: AuditSearch) -> None:
        self._audit = audit
        self._search = search

    def routes(self) -> list[ApiRoute]:
        return [
            ApiRoute("GET", "/api/mcp/calls", self.index,
                     "Recent tool calls, newest first; ?server=name&limit=N (audit:read)", "mcp"),
            ApiRoute("GET", "/api/mcp/calls/{call_id}", self.get, "One call with its timeline (audit:read)", "mcp"),
        ]

    async def index(self, call: Call) -> dict[str, Any]:
        require(call.actor, "audit:read")
        limit = query_integer(call, "limit", 100, 1, 1000)
        where = AuditFilter(surface="mcp", server=call.request.query_params.get("server") or None)
        return {"items": await self._search.events(where, limit)}

    async def get(self, call: Call) -> dict[str, Any]:
        require(call.actor, "audit:read")
        event = await self._audit.get(call.path("call_id"))
        if event is None or event["surface"] != "mcp":
            raise NotFound("no such call")
        return event
