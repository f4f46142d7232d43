"""``/api/mcp/calls``: the audited tool calls with their timelines (start, progress events, end)."""

from __future__ import annotations

from typing import Any

from broker.kernel.audit.adapters.store import AuditQuery
from broker.kernel.errors import FieldError, InvalidInput, NotFound
from broker.kernel.identity.service import require
from console.endpoints import ApiRoute, Call


class McpCallRoutes:
    """Read-only views of MCP call audit events (``audit:read``)."""

    def __init__(self, audit: AuditQuery) -> None:
        self._audit = audit

    def routes(self) -> list[ApiRoute]:
        return [
            ApiRoute("GET", "/api/mcp/calls", self.index,
                     "Recent tool calls, newest first; ?server=name&limit=N (audit:read)", "mcp"),
            ApiRoute("GET", "/api/mcp/calls/{call_id}", self.get, "One call with its timeline (audit:read)", "mcp"),
        ]

    async def index(self, call: Call) -> dict[str, Any]:
        require(call.actor, "audit:read")
        raw = call.request.query_params.get("limit", "100")
        if not raw.isdigit() or not 1 <= int(raw) <= 1000:
            raise InvalidInput("invalid query", [FieldError("query.limit", "an integer from 1 to 1000")])
        server = call.request.query_params.get("server")
        target = f"mcp_server:{server}" if server else None
        return {"items": await self._audit.recent("mcp", int(raw), target)}

    async def get(self, call: Call) -> dict[str, Any]:
        require(call.actor, "audit:read")
        event = await self._audit.get(call.path("call_id"))
        if event is None or event["surface"] != "mcp":
            raise NotFound("no such call")
        return event
