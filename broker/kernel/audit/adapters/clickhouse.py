"""Audit events in ClickHouse, for analytics at scale: a table laid out for it (ReplacingMergeTree ordered by time,
monthly partitions, per-column codecs, retention as TTL rules per kind, captured bodies in columns with a TTL of
their own so they expire before the metadata, token bloom-filter indexes on the bodies), written in batches by a
spool channel (so a ClickHouse outage only delays events), and searched with the same API as the store.

Events are deduplicated by id when parts merge; reads use ``FINAL``, so a batch replayed after a crash is never
counted twice.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
import orjson
from clickhouse_connect.driver.asyncclient import AsyncClient
from clickhouse_connect.driver.exceptions import ClickHouseError

from broker.kernel.audit.adapters.store_search import GROUPS, AuditFilter, like_pattern, trace_summary, usage_row
from broker.kernel.audit.events import AI_NUMBERS
from broker.kernel.errors import DependencyUnavailable

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_KIND = re.compile(r"^[a-z0-9_-]{1,40}$")
_WORD = re.compile(r"[^\W_]+")  # ClickHouse's tokens: runs of letters and digits
_BODY_COLUMNS = {"request": "request_body", "arguments": "request_body",
                 "response": "response_body", "result": "response_body"}
_INSERTED = ("id", "at", "trace_id", "surface", "user_id", "team_id", "api_key_id", "target", "action", "outcome",
             "error_code", "duration_ms", "model", "provider", "input_tokens", "output_tokens", "weighted_tokens",
             "usd", "request_id", "client_ip", "user_agent", "detail", "request_body", "response_body")
# What a search returns: the store's columns, ``at`` in milliseconds (an alias may not reuse a column's name:
# ClickHouse would read the alias in WHERE), bodies left out.
_SELECTED = ", ".join(
    "toUnixTimestamp64Milli(at) AS at_ms" if column == "at" else column
    for column in _INSERTED if column not in ("request_body", "response_body"))
_BUCKETS = {"minute": "formatDateTime(at, '%Y-%m-%dT%H:%iZ', 'UTC')",
            "hour": "formatDateTime(at, '%Y-%m-%dT%H:00Z', 'UTC')", "day": "formatDateTime(at, '%Y-%m-%d', 'UTC')",
            "month": "formatDateTime(at, '%Y-%m', 'UTC')"}


@dataclass(frozen=True, slots=True)
class ClickHouseRetention:
    days: int
    days_by_kind: Mapping[str, int]
    body_days: int


class ClickHouseAudit:
    """The audit table: prepared on first use (ClickHouse may be down when Warden starts), then written and read.
    Unreachable or failing, it raises DependencyUnavailable: searches answer 503, the channel retries."""

    def __init__(self, connect: Callable[[], Awaitable[AsyncClient]], database: str, retention: ClickHouseRetention,
                 table: str = "audit_events", timeout: float = 10.0) -> None:
        if not (_NAME.match(database) and _NAME.match(table)):
            raise ValueError("ClickHouse database and table names are letters, digits and _")
        self._connect = connect
        self._client: AsyncClient | None = None
        self._retention = retention
        self._timeout = timeout
        # The table is prepared for one version of the retention settings; a change asks for the next one.
        self._retention_version = 0
        self._prepared_version: int | None = None
        self._connecting = anyio.Lock()
        self.table = f"{database}.{table}"
        self._database = database

    async def ping(self) -> None:
        await self._query("SELECT 1", {})

    def retain(self, retention: ClickHouseRetention) -> None:
        """New retention periods (an admin changed them): the table's TTLs follow before its next use (again,
        when this comes while the table is being prepared for the previous ones)."""
        self._retention = retention
        self._retention_version += 1

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def _ready(self) -> AsyncClient:
        async with self._connecting:  # the channel and searches may both be first
            if self._client is None:
                self._client = await self._connect()
            version = self._retention_version
            if self._prepared_version != version:
                await self._prepare(self._client)
                self._prepared_version = version
            return self._client

    async def _command(self, sql: str) -> None:
        try:
            with anyio.fail_after(self._timeout):
                await (await self._ready()).command(sql)
        except (ClickHouseError, OSError, TimeoutError) as exc:
            raise DependencyUnavailable(f"ClickHouse: {_reason(exc)}") from exc

    async def _query(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            with anyio.fail_after(self._timeout):
                result = await (await self._ready()).query(sql, parameters=params)
        except (ClickHouseError, OSError, TimeoutError) as exc:
            raise DependencyUnavailable(f"ClickHouse: {_reason(exc)}") from exc
        return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]

    async def _prepare(self, client: AsyncClient) -> None:
        """Create the table when missing; set its retention (and the bodies') to the current settings'."""
        retention = self._retention
        retention_days, days_by_kind, body_days = retention.days, retention.days_by_kind, retention.body_days
        await client.command(f"CREATE DATABASE IF NOT EXISTS {self._database}")
        body_ttl = f" TTL toDateTime(at) + INTERVAL {int(body_days)} DAY" if body_days else ""
        await client.command(f"""
            CREATE TABLE IF NOT EXISTS {self.table} (
                id String,
                at DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
                trace_id String CODEC(ZSTD(1)),
                surface LowCardinality(String),
                user_id Nullable(String),
                team_id Nullable(String),
                api_key_id Nullable(String),
                target LowCardinality(String),
                action LowCardinality(String),
                outcome LowCardinality(String),
                error_code Nullable(Int32),
                duration_ms Float64 CODEC(Gorilla, ZSTD(1)),
                model LowCardinality(Nullable(String)),
                provider LowCardinality(Nullable(String)),
                input_tokens Nullable(Int64),
                output_tokens Nullable(Int64),
                weighted_tokens Nullable(Float64),
                usd Nullable(Float64),
                request_id Nullable(String),
                client_ip Nullable(String),
                user_agent Nullable(String) CODEC(ZSTD(3)),
                detail String CODEC(ZSTD(3)),
                request_body String DEFAULT '' CODEC(ZSTD(3)){body_ttl},
                response_body String DEFAULT '' CODEC(ZSTD(3)){body_ttl},
                INDEX request_body_tokens lower(request_body) TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 4,
                INDEX response_body_tokens lower(response_body) TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 4,
                INDEX trace trace_id TYPE bloom_filter GRANULARITY 4
            ) ENGINE = ReplacingMergeTree
            PARTITION BY toYYYYMM(at)
            ORDER BY (at, id)""")
        # Kept in step with the settings at every start and change (the table may predate either).
        for column in ("request_body", "response_body"):
            await client.command(f"ALTER TABLE {self.table} MODIFY COLUMN {column}"
                                       + (f" TTL toDateTime(at) + INTERVAL {int(body_days)} DAY" if body_days
                                          else " REMOVE TTL"))
        rules = _retention_rules(retention_days, days_by_kind)
        await client.command(f"ALTER TABLE {self.table} " + (f"MODIFY TTL {rules}" if rules else "REMOVE TTL"))

    async def insert(self, events: Sequence[dict[str, Any]]) -> None:
        try:
            with anyio.fail_after(self._timeout):
                await (await self._ready()).insert(self.table, [_row(event) for event in events],
                                                   column_names=list(_INSERTED))
        except (ClickHouseError, OSError, TimeoutError) as exc:
            raise DependencyUnavailable(f"ClickHouse: {_reason(exc)}") from exc

    # -- the search API ---------------------------------------------------------------------------------------

    async def events(self, where: AuditFilter, limit: int, before: tuple[float, str] | None = None
                     ) -> list[dict[str, Any]]:
        clauses, params = _where(where)
        if before is not None:
            clauses.append("(at < fromUnixTimestamp64Milli({before_ms:Int64}, 'UTC') OR (at ="
                           " fromUnixTimestamp64Milli({before_ms:Int64}, 'UTC') AND id < {before_id:String}))")
            params |= {"before_ms": round(before[0] * 1000), "before_id": before[1]}
        condition = " AND ".join(clauses) or "1"
        rows = await self._query(f"SELECT {_SELECTED} FROM {self.table} FINAL WHERE {condition}"
                                 " ORDER BY at DESC, id DESC LIMIT {limit:UInt32}", {**params, "limit": limit})
        return [_event(row) for row in rows]

    async def trace(self, trace_id: str) -> dict[str, Any]:
        rows = await self._query(f"SELECT {_SELECTED} FROM {self.table} FINAL WHERE trace_id = {{trace:String}}"
                                 " ORDER BY at, id LIMIT 10000", {"trace": trace_id})
        return trace_summary(trace_id, [_event(row) for row in rows])

    async def usage(self, group_by: str, period: str | None, where: AuditFilter) -> list[dict[str, Any]]:
        column = GROUPS[group_by]
        bucket = _BUCKETS[period] if period else "''"
        clauses, params = _where(where)
        condition = " AND ".join(clauses) or "1"
        rows = await self._query(
            f"SELECT {column} AS grp, {bucket} AS period, count() AS requests, countIf(outcome != 'ok') AS errors,"
            " sum(ifNull(input_tokens, 0)) AS input_sum, sum(ifNull(output_tokens, 0)) AS output_sum,"
            " sum(ifNull(weighted_tokens, 0)) AS weighted_sum, sum(ifNull(usd, 0)) AS usd_sum,"
            " avg(duration_ms) AS avg_duration_ms"
            f" FROM {self.table} FINAL WHERE {condition} GROUP BY grp, period"
            " ORDER BY period, usd_sum DESC, requests DESC LIMIT 10000", params)
        return [usage_row(group_by, period, {**row, "input_tokens": row["input_sum"], "output_tokens":
                          row["output_sum"], "weighted_tokens": row["weighted_sum"], "usd": row["usd_sum"]})
                for row in rows]


class ClickHouseChannel:
    """The spool channel that writes events, bodies included, to ClickHouse in batches."""

    wants_bodies = True

    def __init__(self, audit: ClickHouseAudit, name: str = "clickhouse") -> None:
        self.name = name
        self._audit = audit

    async def deliver(self, events: Sequence[dict[str, Any]]) -> None:
        await self._audit.insert(events)

    async def aclose(self) -> None:
        return None  # the connection is the search's too; whoever made it closes it


def _retention_rules(default_days: int, days_by_kind: Mapping[str, int]) -> str:
    rules = []
    for kind, days in days_by_kind.items():
        if not _KIND.match(kind):
            raise ValueError(f"audit kind {kind!r} cannot name a ClickHouse TTL rule")
        if days:
            rules.append(f"toDateTime(at) + INTERVAL {int(days)} DAY DELETE WHERE surface = '{kind}'")
    if default_days:
        others = ", ".join(f"'{kind}'" for kind in days_by_kind)
        rules.append(f"toDateTime(at) + INTERVAL {int(default_days)} DAY DELETE"
                     + (f" WHERE surface NOT IN ({others})" if others else ""))
    return ", ".join(rules)


def _row(event: dict[str, Any]) -> list[Any]:
    bodies = {column: "" for column in ("request_body", "response_body")}
    for part, body in (event.get("bodies") or {}).items():
        bodies[_BODY_COLUMNS[part]] = body["text"]
    detail = event["detail"]
    numbers = {name: detail.get(name) for name in AI_NUMBERS} if event["surface"] == "ai" else {}
    values = {**event, **numbers, **bodies, "at": datetime.fromtimestamp(event["at"], UTC),
              "detail": orjson.dumps(detail).decode()}
    return [values.get(column) for column in _INSERTED]


def _where(f: AuditFilter) -> tuple[list[str], dict[str, Any]]:
    clauses: list[str] = []
    params: dict[str, Any] = {}

    def add(clause: str, **values: Any) -> None:
        clauses.append(clause)
        params.update(values)

    for column, value in (("surface", f.surface), ("user_id", f.user_id), ("team_id", f.team_id),
                          ("api_key_id", f.api_key_id), ("model", f.model), ("provider", f.provider),
                          ("outcome", f.outcome), ("trace_id", f.trace_id), ("request_id", f.request_id)):
        if value is not None:
            add(f"{column} = {{{column}:String}}", **{column: value})
    if f.since is not None:
        add("at >= fromUnixTimestamp64Milli({since_ms:Int64}, 'UTC')", since_ms=round(f.since * 1000))
    if f.until is not None:
        add("at < fromUnixTimestamp64Milli({until_ms:Int64}, 'UTC')", until_ms=round(f.until * 1000))
    if f.server is not None:
        add("target = {target:String}", target=f"mcp_server:{f.server}")
    if f.tool is not None:
        if "*" in f.tool:
            add("action LIKE {action:String}", action="tools/call:" + like_pattern(f.tool))
        else:
            add("action = {action:String}", action=f"tools/call:{f.tool}")
    if f.status is not None:
        if f.status == 200:
            add("error_code IS NULL")
        else:
            add("error_code = {status:Int32}", status=f.status)
    if f.text is not None:
        for n, word in enumerate(_WORD.findall(f.text.lower())):
            add(f"(hasToken(lower(request_body), {{w{n}:String}}) OR hasToken(lower(response_body),"
                f" {{w{n}:String}}))", **{f"w{n}": word})
    return clauses, params


def _reason(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__


def _event(row: dict[str, Any]) -> dict[str, Any]:
    event = {**row, "at": row["at_ms"] / 1000, "detail": orjson.loads(row["detail"])}
    del event["at_ms"]
    return event
