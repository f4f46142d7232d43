"""``/api/mcp/calls``: the audited tool calls with their timelines (start, progress events, end), and the calls
running now as a live stream of their steps (``/api/mcp/calls/live``, opened with a one-shot ticket)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette import EventSourceResponse

from broker.connections.pending import PendingAuthorizations
from broker.kernel.audit.adapters.store import AuditQuery
from broker.kernel.audit.adapters.store_search import AuditFilter
from broker.kernel.audit.ports import AuditSearch
from broker.kernel.errors import NotFound
from broker.kernel.identity.service import require
from broker.mcp.live_calls import LiveCalls
from console.endpoints import ApiRoute, Call, query_integer
from console.stream_tickets import TICKET_SECONDS, StreamTickets


class McpCallRoutes:
    """Views of MCP calls (``audit:read``, or ``audit:read`` in a team for that team's calls)."""

    def __init__(self, audit: AuditQuery, search: AuditSearch, live: LiveCalls, tickets: PendingAuthorizations
                 ) -> None:
        self._audit = audit
        self._search = search
        self._live = live
        self._tickets = StreamTickets(tickets, "mcp-calls")

    def routes(self) -> list[ApiRoute]:
        return [
            ApiRoute("GET", "/api/mcp/calls", self.index,
                     "Recent tool calls, newest first; ?server=name&limit=N (audit:read)", "mcp"),
            ApiRoute("POST", "/api/mcp/calls/live/tickets", self.ticket,
                     f"A ticket for one stream of the tool calls running now, valid {TICKET_SECONDS} s (audit:read,"
                     " or in ?team_id's team: the stream then shows that team's calls)", "mcp", status=201),
            ApiRoute("GET", "/api/mcp/calls/live", self.stream,
                     "Tool calls as they run, on every instance (text/event-stream): `watching` once every"
                     " instance has been asked to publish, then a `step` event per start, progress event and end,"
                     " each naming its call, server, tool, caller and trace; ?ticket= from POST"
                     " /api/mcp/calls/live/tickets", "mcp", public=True),
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

    async def ticket(self, call: Call) -> dict[str, Any]:
        return await self._tickets.for_audit_readers(call, "/api/mcp/calls/live")

    async def stream(self, call: Call) -> EventSourceResponse:
        grant = await self._tickets.redeem(call.request.query_params.get("ticket", ""))
        return EventSourceResponse(self._steps(grant["team_id"]), ping=15, headers={"cache-control": "no-store"})

    async def _steps(self, team_id: str | None) -> AsyncIterator[dict[str, str]]:
        async with self._live.watch() as steps:
            yield {"event": "watching", "data": "{}"}  # every instance has been told to publish its calls' steps
            async for step in steps:
                if team_id is None or step.get("team_id") == team_id:
                    yield {"event": "step", "data": json.dumps(step)}
