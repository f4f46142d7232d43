"""The ClickHouse audit adapter against the real ClickHouse engine (chdb behind an HTTP endpoint that speaks what
clickhouse-connect sends): its DDL (TTL rules, codecs, bloom-filter indexes), its batched inserts through the
spool, the whole search API answered from ClickHouse, and a ClickHouse outage that only delays events."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest

from broker.app import Warden, create_app
from broker.kernel.audit.adapters.store_search import AuditFilter
from tests.conftest import STRONG_PASSWORD, FakeClock, asgi_client, eventually, make_config
from tests.console.conftest import sign_in
from tests.kernel.audit.clickhouse_server import ClickHouseEndpoint, clickhouse
from tests.kernel.audit.test_search import (
    audit_log,
    test_a_viewer_reads_the_log_but_searches_bodies_only_with_read_bodies,
    test_bad_queries_are_refused_naming_the_parameter,
    test_filters,
    test_full_text_search_over_bodies_takes_words_never_query_syntax,
    test_one_trace_across_both_surfaces_with_its_cost,
    test_pages_follow_the_cursor_to_the_end,
    test_tool_patterns_match_only_what_they_say,
    test_usage_and_cost_aggregates,
)

__all__ = [  # the search tests, run again with ClickHouse answering; and the fixtures they use
    "audit_log", "clickhouse", "test_a_viewer_reads_the_log_but_searches_bodies_only_with_read_bodies",
    "test_bad_queries_are_refused_naming_the_parameter", "test_filters",
    "test_full_text_search_over_bodies_takes_words_never_query_syntax",
    "test_one_trace_across_both_surfaces_with_its_cost", "test_pages_follow_the_cursor_to_the_end",
    "test_tool_patterns_match_only_what_they_say", "test_usage_and_cost_aggregates",
]


def clickhouse_config(tmp_path: Path, url: str, database: str, **audit: object) -> dict[str, object]:
    return {"clickhouse": {"url": url, "database": database, "timeout_seconds": 5}, "retention_days": 400,
            "retention_days_by_kind": {"mcp": 90, "quota": 0}, **audit}


@pytest.fixture
async def warden(tmp_path: Path, clock: FakeClock, clickhouse: ClickHouseEndpoint) -> AsyncIterator[Warden]:
    """Warden on SQLite with ClickHouse for analytics (the search tests' fixtures ask for this one)."""
    url = clickhouse.url
    database = "w" + uuid.uuid4().hex[:12]
    config = make_config(tmp_path, "", audit=clickhouse_config(tmp_path, url, database))
    async with create_app(config, clock) as app:
        yield app


async def test_the_table_is_laid_out_for_analytics(warden: Warden, audit_log: httpx.AsyncClient,
                                                   clickhouse: ClickHouseEndpoint) -> None:
    ddl = await anyio.to_thread.run_sync(clickhouse.query,
                                         f"SHOW CREATE TABLE {warden.kernel.search.table}")  # type: ignore[attr-defined]
    assert "ENGINE = ReplacingMergeTree" in ddl and "PARTITION BY toYYYYMM(at)" in ddl and "ORDER BY (at, id)" in ddl
    assert "CODEC(Delta(8), ZSTD(1))" in ddl and "`detail` String CODEC(ZSTD(3))" in ddl
    assert "INDEX request_body_tokens lower(request_body) TYPE tokenbf_v1(32768, 3, 0)" in ddl
    # Bodies expire before the metadata; each kind has its own period, 0 keeps a kind forever.
    assert "`request_body` String DEFAULT '' CODEC(ZSTD(3)) TTL toDateTime(at) + toIntervalDay(30)" in ddl
    assert "toDateTime(at) + toIntervalDay(90) WHERE surface = 'mcp'" in ddl
    assert "toDateTime(at) + toIntervalDay(400) WHERE surface NOT IN ('mcp', 'quota')" in ddl


async def test_retention_changed_in_the_console_moves_the_tables_ttls(warden: Warden, audit_log: httpx.AsyncClient,
                                                                         clickhouse: ClickHouseEndpoint) -> None:
    assert (await audit_log.put("/api/settings/retention", json={"retention_days": 60, "retention_days_by_kind": {
        "admin": 0, "mcp": 7}})).status_code == 200
    assert (await audit_log.put("/api/settings/audit", json={"body_retention_days": 3})).status_code == 200
    assert (await audit_log.get("/api/audit/events?limit=1")).status_code == 200  # the table's next use
    ddl = await anyio.to_thread.run_sync(clickhouse.query,
                                         f"SHOW CREATE TABLE {warden.kernel.search.table}")  # type: ignore[attr-defined]
    assert "`request_body` String DEFAULT '' CODEC(ZSTD(3)) TTL toDateTime(at) + toIntervalDay(3)" in ddl
    assert "toDateTime(at) + toIntervalDay(7) WHERE surface = 'mcp'" in ddl
    assert "toDateTime(at) + toIntervalDay(60) WHERE surface NOT IN ('admin', 'mcp')" in ddl


async def test_a_clickhouse_outage_only_delays_events(tmp_path: Path, clock: FakeClock,
                                                      clickhouse: ClickHouseEndpoint) -> None:
    config = make_config(tmp_path, "", audit=clickhouse_config(tmp_path, clickhouse.url, "w" + uuid.uuid4().hex[:12]))
    async with create_app(config, clock) as app, asgi_client(app.gateway, "http://gateway.test") as client:
        search = app.kernel.search

        async def refused(count: int) -> None:
            for _ in range(count):
                answer = await client.get("/v1/models", headers={"authorization": "Bearer wdn_nope"})
                assert answer.status_code == 401  # answered at once, ClickHouse or not

        async def in_clickhouse(count: int) -> bool:
            try:
                return len(await search.events(AuditFilter(surface="ai"), 1000)) == count
            except Exception:
                return False

        await refused(5)
        assert await eventually(lambda: in_clickhouse(5), within=15)
        await anyio.to_thread.run_sync(clickhouse.down)
        try:
            await refused(20)
            failures = app.kernel.registry

            async def failing() -> bool:
                return (failures.get_sample_value("warden_audit_forward_failures_total",
                                                  {"channel": "clickhouse"}) or 0) > 0

            assert await eventually(failing, within=15)
            async with asgi_client(app.console, "http://console.test") as console:
                setup = {"email": "admin@example.com", "password": STRONG_PASSWORD}
                assert (await console.post("/api/setup", json=setup)).status_code == 201
                await sign_in(console, "admin@example.com")
                down = await console.get("/api/audit/events")
                assert down.status_code == 503 and "ClickHouse" in down.text  # a clear error, no hang
        finally:
            await anyio.to_thread.run_sync(clickhouse.up)
        assert await eventually(lambda: in_clickhouse(25), within=40)
