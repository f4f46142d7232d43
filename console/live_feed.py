"""``/api/audit/live``: a server-sent event stream of audit events as they are stored (every instance's: it reads
the shared store, or ClickHouse) and of per-minute stats, for the console's dashboard. It opens with a one-shot
ticket (``POST /api/audit/live/tickets``, see ``console.stream_tickets``).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import anyio
from sse_starlette import EventSourceResponse

from broker.connections.pending import PendingAuthorizations
from broker.kernel.audit.adapters.store_search import AuditFilter
from broker.kernel.audit.ports import AuditSearch
from broker.kernel.errors import DependencyUnavailable
from console.endpoints import ApiRoute, Call
from console.stream_tickets import TICKET_SECONDS, StreamTickets

BATCH = 500  # events sent per poll at most (the stats count every event regardless)
_TRAFFIC = ("ai", "mcp")


class LiveFeed:
    def __init__(self, search: AuditSearch, tickets: PendingAuthorizations, poll_seconds: float = 1.0,
                 stats_seconds: float = 5.0) -> None:
        self._search = search
        self._tickets = StreamTickets(tickets, "live")
        self._poll = poll_seconds
        self._stats_every = stats_seconds

    def routes(self) -> list[ApiRoute]:
        return [
            ApiRoute("POST", "/api/audit/live/tickets", self.ticket,
                     f"A ticket for one live feed stream, valid {TICKET_SECONDS} s (audit:read, or in ?team_id's"
                     " team: the stream then shows that team's events)", "audit", status=201),
            ApiRoute("GET", "/api/audit/live", self.stream,
                     "The live feed (text/event-stream): `audit` events as they are stored (the last minute's"
                     " first), `stats` every few seconds (AI and MCP requests: per-minute requests, errors, tokens"
                     " and cost over the last hour; the last minute's latency p50/p95); ?ticket= from POST"
                     " /api/audit/live/tickets",
                     "audit", public=True),
        ]

    async def ticket(self, call: Call) -> dict[str, Any]:
        return await self._tickets.for_audit_readers(call, "/api/audit/live")

    async def stream(self, call: Call) -> EventSourceResponse:
        grant = await self._tickets.redeem(call.request.query_params.get("ticket", ""))
        where = AuditFilter(team_id=grant["team_id"])
        return EventSourceResponse(self._events(where), ping=15, headers={"cache-control": "no-store"})

    async def _events(self, where: AuditFilter) -> AsyncIterator[dict[str, str]]:
        since = time.time() - 60
        sent_at_since: set[str] = set()  # events at exactly ``since`` already sent (it is read again)
        next_stats = 0.0
        while True:
            try:
                batch = await self._search.events(replace(where, since=since), BATCH)
                for event in reversed(batch):
                    if event["id"] not in sent_at_since:
                        yield {"event": "audit", "id": event["id"], "data": json.dumps(event)}
                if batch:
                    newest = batch[0]["at"]
                    at_newest = {e["id"] for e in batch if e["at"] == newest}
                    sent_at_since = at_newest | sent_at_since if newest == since else at_newest
                    since = newest
                if time.monotonic() >= next_stats:
                    yield {"event": "stats", "data": json.dumps(await self._stats(where))}
                    next_stats = time.monotonic() + self._stats_every
            except DependencyUnavailable as exc:
                yield {"event": "problem", "data": json.dumps({"message": exc.message})}
            await anyio.sleep(self._poll)

    async def _stats(self, where: AuditFilter) -> dict[str, Any]:
        now = time.time()
        # Requests through the gateway (AI and MCP); the admin trail's changes and sign-ins are not traffic.
        minutes = [row for row in await self._search.usage("surface", "minute", replace(where, since=now - 3600))
                   if row["surface"] in _TRAFFIC]
        last = [e for e in await self._search.events(replace(where, since=now - 60), 5000) if e["surface"] in _TRAFFIC]
        durations = sorted(e["duration_ms"] for e in last)
        return {"at": now, "minutes": minutes, "last_minute": {
            "requests": len(last), "errors": sum(1 for e in last if e["outcome"] != "ok"),
            "p50_ms": _quantile(durations, 0.5), "p95_ms": _quantile(durations, 0.95)}}


def _quantile(ordered: list[float], q: float) -> float | None:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None

