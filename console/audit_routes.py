"""``/api/audit``: searching audit events (filters, full-text over captured bodies), one trace across both
surfaces, usage and cost aggregates, single events and their bodies; and ``/api/settings/audit``: what bodies
are captured and how they are redacted (changes apply on every instance at once)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from starlette.datastructures import QueryParams

from broker.kernel.audit.adapters.store import AuditQuery
from broker.kernel.audit.adapters.store_search import GROUPS, PERIODS, AuditFilter, trace_summary
from broker.kernel.audit.body_store import BodyStore, BodyStoreError
from broker.kernel.audit.ports import AuditSearch
from broker.kernel.errors import DependencyUnavailable, FieldError, InvalidInput, NotFound
from broker.kernel.identity.service import require, require_somewhere
from console.endpoints import ApiRoute, Call, query_integer


class AuditRoutes:
    def __init__(self, audit: AuditQuery, search: AuditSearch, bodies: BodyStore) -> None:
        self._audit = audit
        self._search = search
        self._bodies = bodies

    def routes(self) -> list[ApiRoute]:
        return [
            ApiRoute("GET", "/api/audit/events", self.search,
                     "Audit events, newest first, filtered by ?since, until (unix seconds or ISO 8601), surface,"
                     " user_id, team_id, api_key_id, model, provider, server, tool (* wildcards), outcome, status,"
                     " trace_id, request_id; ?q= words all found in a captured body (audit:read_bodies); ?limit"
                     " (100, at most 1000) and ?cursor (next_cursor of the previous page) (audit:read, or in"
                     " ?team_id's team)", "audit"),
            ApiRoute("GET", "/api/audit/traces/{trace_id}", self.trace,
                     "One trace across both surfaces (LLM turns and tool calls) in time order, with its tokens and"
                     " total cost (audit:read; audit:read in a team: that team's part of it)", "audit"),
            ApiRoute("GET", "/api/audit/usage", self.usage,
                     "Requests, errors, tokens, cost and mean duration per ?group_by= user, team, key, model,"
                     " provider, surface, server or tool, per UTC ?period= minute, hour, day or month (or in all);"
                     " same filters as the search (audit:read, or in ?team_id's team)", "audit"),
            ApiRoute("GET", "/api/audit/events/{event_id}", self.get,
                     "One audit event; detail.bodies gives the captured bodies' sizes and redactions (audit:read,"
                     " everywhere or in the event's team)",
                     "audit"),
            ApiRoute("GET", "/api/audit/events/{event_id}/bodies", self.bodies,
                     "The event's captured bodies, redacted, offloaded ones fetched (audit:read_bodies, everywhere or"
                     " in the event's team)", "audit"),
        ]

    async def search(self, call: Call) -> dict[str, Any]:
        query = call.request.query_params
        where = _filter(query)
        require(call.actor, "audit:read", where.team_id)  # a team-scoped reader names the team
        if where.text is not None:
            require(call.actor, "audit:read_bodies", where.team_id)  # matches tell what bodies contain
        limit = query_integer(call, "limit", 100, 1, 1000)
        before = _cursor(query.get("cursor"))
        items = await self._search.events(where, limit, before)
        last = items[-1] if len(items) == limit else None
        return {"items": items, "next_cursor": f"{last['at']!r}:{last['id']}" if last else None}

    async def trace(self, call: Call) -> dict[str, Any]:
        require_somewhere(call.actor, "audit:read")
        trace = await self._search.trace(call.path("trace_id"))
        permissions = call.actor.permissions
        # A team's auditor sees the part of the run that is their team's (and what it cost), not the rest.
        visible = [event for event in trace["events"] if permissions.allows("audit:read", event["team_id"])]
        if not visible:
            raise NotFound("no audit events in this trace")
        return trace if len(visible) == len(trace["events"]) else trace_summary(trace["trace_id"], visible)

    async def usage(self, call: Call) -> dict[str, Any]:
        query = call.request.query_params
        where = _filter(query)
        require(call.actor, "audit:read", where.team_id)
        group_by = query.get("group_by", "user")
        period = query.get("period") or None
        problems = []
        if group_by not in GROUPS:
            problems.append(FieldError("query.group_by", f"one of {', '.join(GROUPS)}"))
        if period is not None and period not in PERIODS:
            problems.append(FieldError("query.period", f"one of {', '.join(PERIODS)}"))
        if problems:
            raise InvalidInput("invalid query", problems)
        return {"group_by": group_by, "period": period, "items": await self._search.usage(group_by, period, where)}

    async def get(self, call: Call) -> dict[str, Any]:
        """The event, for audit:read everywhere or in the event's team."""
        require_somewhere(call.actor, "audit:read")
        event = await self._audit.get(call.path("event_id"))
        if event is None:
            raise NotFound("no such audit event")
        require(call.actor, "audit:read", event["team_id"])
        return event

    async def bodies(self, call: Call) -> dict[str, Any]:
        require_somewhere(call.actor, "audit:read_bodies")
        event_id = call.path("event_id")
        event = await self._audit.get(event_id)
        if event is None:
            raise NotFound("no such audit event")
        require(call.actor, "audit:read_bodies", event["team_id"])
        try:
            return {"event_id": event_id, "bodies": await self._audit.bodies(event_id, self._bodies)}
        except BodyStoreError as exc:
            raise DependencyUnavailable(f"an offloaded body could not be read: {exc}") from exc


_TEXT_FILTERS = ("surface", "user_id", "team_id", "api_key_id", "model", "provider", "server", "tool", "outcome",
                 "trace_id", "request_id")


def _filter(query: QueryParams) -> AuditFilter:
    problems: list[FieldError] = []
    values: dict[str, Any] = {name: query.get(name) or None for name in _TEXT_FILTERS}
    for name in ("since", "until"):
        if (raw := query.get(name)) is not None:
            values[name] = _moment(raw)
            if values[name] is None:
                problems.append(FieldError(f"query.{name}", "unix seconds or an ISO 8601 date-time"))
    if (status := query.get("status")) is not None:
        if not status.lstrip("-").isdigit():
            problems.append(FieldError("query.status", "an HTTP status or JSON-RPC error code"))
        else:
            values["status"] = int(status)
    if (text := query.get("q")) is not None:
        if not re.search(r"\w", text):
            problems.append(FieldError("query.q", "at least one word to look for"))
        values["text"] = text
    if problems:
        raise InvalidInput("invalid query", problems)
    return AuditFilter(**values)


def _moment(raw: str) -> float | None:
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _cursor(raw: str | None) -> tuple[float, str] | None:
    if raw is None:
        return None
    at, _, event_id = raw.partition(":")
    try:
        return float(at), event_id
    except ValueError:
        raise InvalidInput("invalid query", [FieldError("query.cursor", "the next_cursor of a previous page")]) \
            from None
