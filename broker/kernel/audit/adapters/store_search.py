"""Searching the audit events in the store (SQLite or PostgreSQL): filters, full-text search over captured bodies
(FTS5 / tsvector), one trace end to end, and usage and cost aggregates.

Every value a caller supplies travels as a query parameter; a tool pattern's ``*`` becomes LIKE's ``%`` after
``%``, ``_`` and the escape character itself were escaped, so a caller's pattern never matches more than it says.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from broker.kernel.audit.adapters.store import event_from_row
from broker.kernel.store.ports import Database

GROUPS = {"user": "user_id", "team": "team_id", "key": "api_key_id", "model": "model", "provider": "provider",
          "surface": "surface", "server": "target", "tool": "action"}
PERIODS = ("minute", "hour", "day", "month")
_BUCKETS = {
    "sqlite": {"minute": "strftime('%Y-%m-%dT%H:%MZ', at, 'unixepoch')",
               "hour": "strftime('%Y-%m-%dT%H:00Z', at, 'unixepoch')", "day": "strftime('%Y-%m-%d', at, 'unixepoch')",
               "month": "strftime('%Y-%m', at, 'unixepoch')"},
    "postgres": {"minute": "to_char(to_timestamp(at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI\"Z\"')",
                 "hour": "to_char(to_timestamp(at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24\":00Z\"')",
                 "day": "to_char(to_timestamp(at) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
                 "month": "to_char(to_timestamp(at) AT TIME ZONE 'UTC', 'YYYY-MM')"},
}
_WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class AuditFilter:
    since: float | None = None
    until: float | None = None
    surface: str | None = None
    user_id: str | None = None
    team_id: str | None = None
    api_key_id: str | None = None
    model: str | None = None  # AI: the registered model (aliases resolved)
    provider: str | None = None
    server: str | None = None  # MCP
    tool: str | None = None  # namespaced; may contain * wildcards
    outcome: str | None = None  # ok, tool_error, refused, error, cancelled
    status: int | None = None  # the HTTP status or JSON-RPC error code; 200: no error
    trace_id: str | None = None
    request_id: str | None = None
    text: str | None = None  # every word in a captured body


def like_pattern(pattern: str) -> str:
    """A user's ``*`` pattern as a LIKE pattern (ESCAPE '\\'): its own %, _ and \\ match only themselves."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


class StoreAuditSearch:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def ping(self) -> None:
        await self._db.ping()

    async def events(self, where: AuditFilter, limit: int, before: tuple[float, str] | None = None
                     ) -> list[dict[str, Any]]:
        """Matching events, newest first; ``before`` is the (at, id) of the last event of the previous page."""
        clauses, args = self._where(where)
        if before is not None:
            clauses.append("(at < ? OR (at = ? AND id < ?))")
            args += [before[0], before[0], before[1]]
        condition = " AND ".join(clauses) or "1 = 1"
        rows = await self._db.fetch(f"SELECT * FROM audit_events WHERE {condition} ORDER BY at DESC, id DESC LIMIT ?",
                                    *args, limit)
        return [event_from_row(row) for row in rows]

    async def trace(self, trace_id: str) -> dict[str, Any]:
        """One trace across both surfaces, in time order, with what it cost in all."""
        rows = await self._db.fetch("SELECT * FROM audit_events WHERE trace_id = ? ORDER BY at, id LIMIT 10000",
                                    trace_id)
        return trace_summary(trace_id, [event_from_row(row) for row in rows])

    async def usage(self, group_by: str, period: str | None, where: AuditFilter) -> list[dict[str, Any]]:
        """Requests, errors, tokens, cost and mean duration per group (and per UTC period), costliest first within a
        period."""
        column = GROUPS[group_by]
        bucket = _BUCKETS[self._db.dialect][period] if period else "''"
        clauses, args = self._where(where)
        condition = " AND ".join(clauses) or "1 = 1"
        rows = await self._db.fetch(
            f"SELECT {column} AS grp, {bucket} AS period, COUNT(*) AS requests,"
            " SUM(CASE WHEN outcome = 'ok' THEN 0 ELSE 1 END) AS errors,"
            " COALESCE(SUM(input_tokens), 0) AS input_tokens, COALESCE(SUM(output_tokens), 0) AS output_tokens,"
            " COALESCE(SUM(weighted_tokens), 0) AS weighted_tokens, COALESCE(SUM(usd), 0) AS usd,"
            " AVG(duration_ms) AS avg_duration_ms"
            f" FROM audit_events WHERE {condition} GROUP BY {column}{f', {bucket}' if period else ''}"
            " ORDER BY period, usd DESC, requests DESC LIMIT 10000", *args)
        return [usage_row(group_by, period, row) for row in rows]

    def _where(self, f: AuditFilter) -> tuple[list[str], list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []

        def add(clause: str, *values: Any) -> None:
            clauses.append(clause)
            args.extend(values)

        for column, value in (("surface", f.surface), ("user_id", f.user_id), ("team_id", f.team_id),
                              ("api_key_id", f.api_key_id), ("model", f.model), ("provider", f.provider),
                              ("outcome", f.outcome), ("trace_id", f.trace_id), ("request_id", f.request_id)):
            if value is not None:
                add(f"{column} = ?", value)
        if f.since is not None:
            add("at >= ?", f.since)
        if f.until is not None:
            add("at < ?", f.until)
        if f.server is not None:
            add("target = ?", f"mcp_server:{f.server}")
        if f.tool is not None:
            if "*" in f.tool:
                add("action LIKE ? ESCAPE '\\'", "tools/call:" + like_pattern(f.tool))
            else:
                add("action = ?", f"tools/call:{f.tool}")
        if f.status is not None:
            add("error_code IS NULL") if f.status == 200 else add("error_code = ?", f.status)
        if f.text is not None:
            words = _WORD.findall(f.text)
            # Bodies kept whole, then offloaded ones by the start of their text kept for search (search_text).
            if self._db.dialect == "sqlite":
                # Each word as an FTS5 string: the caller's text is never read as FTS query syntax.
                query = " ".join(f'"{word}"' for word in words)
                add("id IN (SELECT b.event_id FROM audit_bodies b JOIN audit_bodies_fts f ON f.rowid = b.rowid"
                    " WHERE audit_bodies_fts MATCH ? UNION ALL SELECT b.event_id FROM audit_bodies b"
                    " JOIN audit_bodies_offloaded_fts f ON f.rowid = b.rowid WHERE audit_bodies_offloaded_fts MATCH ?)",
                    query, query)
            else:
                query = " ".join(words)
                add("id IN (SELECT event_id FROM audit_bodies WHERE search @@ plainto_tsquery('simple', ?)"
                    " UNION ALL SELECT event_id FROM audit_bodies WHERE search_text IS NOT NULL"
                    " AND to_tsvector('simple', search_text) @@ plainto_tsquery('simple', ?))", query, query)
        return clauses, args


def trace_summary(trace_id: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    """A trace's events (in time order) with what the trace cost in all."""
    ends = [e["at"] + e["duration_ms"] / 1000 for e in events]
    return {"trace_id": trace_id, "events": events, "count": len(events),
            "usd": sum(e["usd"] or 0.0 for e in events),
            "input_tokens": sum(e["input_tokens"] or 0 for e in events),
            "output_tokens": sum(e["output_tokens"] or 0 for e in events),
            "tool_calls": sum(1 for e in events if e["surface"] == "mcp"),
            "llm_calls": sum(1 for e in events if e["surface"] == "ai"),
            "started_at": events[0]["at"] if events else None,
            "duration_ms": (max(ends) - events[0]["at"]) * 1000 if events else 0.0}


def usage_row(group_by: str, period: str | None, row: Mapping[str, Any]) -> dict[str, Any]:
    return {group_by: _group_name(group_by, row["grp"]), **({"period": row["period"]} if period else {}),
            "requests": int(row["requests"]), "errors": int(row["errors"]),
            "input_tokens": int(row["input_tokens"]), "output_tokens": int(row["output_tokens"]),
            "weighted_tokens": float(row["weighted_tokens"]), "usd": float(row["usd"]),
            "avg_duration_ms": round(float(row["avg_duration_ms"] or 0.0), 1)}


def _group_name(group_by: str, value: Any) -> Any:
    if isinstance(value, str) and group_by in ("server", "tool"):
        return value.split(":", 1)[1] if ":" in value else value
    return value
