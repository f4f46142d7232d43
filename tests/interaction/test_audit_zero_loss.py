"""Nothing lost: Warden killed with SIGKILL in the middle of a load of AI and MCP requests, then started again,
holds an audit event for every request it answered, each exactly once, and none for a request never sent. And
with the database (PostgreSQL), ClickHouse and a webhook channel all down for 30 s amid a load, every event
reaches each of them once they are back."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from itertools import count
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
import yaml

from tests.ai.fake_providers import launched
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.interaction.process import WardenProcess, base_env
from tests.interaction.tcp_proxy import tcp_proxy
from tests.kernel.audit.clickhouse_server import ClickHouseEndpoint, clickhouse
from tests.mcp.conftest import served_plain_upstream
from tests.webhook_receiver import Receiver

__all__ = ["clickhouse"]  # the fixture
KEY = "wdn_" + "z" * 43
REQUESTS = 10_000
KILL_AFTER = 5_000  # answered requests before the SIGKILL
CONCURRENCY = 32
OUTAGE_SECONDS = 30
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}
# A 2026-07-28 tool call: one POST, no session.
TOOL_CALL = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
    "name": "plain__echo", "arguments": {"text": "x"},
    "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {},
              "io.modelcontextprotocol/clientInfo": {"name": "load", "version": "1"}}}}
MCP_HEADERS = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2026-07-28",
               "mcp-method": "tools/call", "mcp-name": "plain__echo"}
# The events the load leaves: chat completions and tool calls, by the request id each request sent.
AUDITED = ("SELECT request_id FROM audit_events WHERE (surface = 'ai' AND action LIKE 'chat.completions:%%')"
           " OR (surface = 'mcp' AND action = 'tools/call:plain__echo')")


@pytest.fixture
def upstreams() -> Iterator[tuple[str, str]]:
    """The fake LLM provider and an MCP server."""
    with launched() as provider, served_plain_upstream() as mcp:
        yield provider, mcp


def warden_env(tmp_path: Path, upstreams: tuple[str, str], database_url: str = "", **config: Any) -> dict[str, str]:
    provider, mcp = upstreams
    path = tmp_path / "warden.yaml"
    path.write_text(yaml.safe_dump({
        "providers": [{"name": "fake", "type": "openai", "base_url": provider + "/v1", "api_key": "sk-fake"}],
        "mcp_servers": [{"name": "plain", "transport": "streamable_http", "url": mcp, "timeout_seconds": 5}],
        "api_keys": [{"name": "load", "owner": "load@example.com", "secret": KEY, "surfaces": ["ai", "mcp"]}],
        **config,
    }))
    env = base_env(tmp_path / "data", database_url, WARDEN_CONFIG=str(path), WARDEN_SERVER_LOG_LEVEL="warning")
    if not database_url:
        del env["WARDEN_DATABASE_URL"]
    return env


async def drive(gateway: str, answered: set[str], more: Callable[[int], bool],
                after_each: Callable[[], None] = lambda: None, concurrency: int = CONCURRENCY,
                pause: float = 0.0) -> None:
    """Send chat completions and tool calls, alternately, each with its own x-request-id, while ``more(n)``
    holds for the next number; add the id of each request Warden answered (200 with a result) to ``answered``."""
    numbers = count()

    async def worker(session: aiohttp.ClientSession) -> None:
        while more(n := next(numbers)):
            request_id = f"load-{n}"
            headers = {"authorization": f"Bearer {KEY}", "x-request-id": request_id}
            path, body = ("/v1/chat/completions", CHAT) if n % 2 else ("/mcp", TOOL_CALL)
            if not n % 2:
                headers.update(MCP_HEADERS)
            try:
                async with session.post(gateway + path, json=body, headers=headers) as answer:
                    reply = await answer.read()
                    if answer.status == 200 and (path != "/mcp" or b'"result"' in reply):
                        answered.add(request_id)
            except (TimeoutError, aiohttp.ClientError):
                pass  # in flight when Warden died: it may or may not have been audited, never twice
            after_each()
            if pause:
                await asyncio.sleep(pause)

    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))


def audited_in_sqlite(data_dir: Path) -> list[str]:
    with sqlite3.connect(data_dir / "warden.db") as db:
        return [r[0] for r in db.execute(AUDITED.replace("%%", "%"))]


def test_a_sigkill_in_the_middle_of_a_load_loses_no_audit_event_and_duplicates_none(
        tmp_path: Path, upstreams: tuple[str, str]) -> None:
    env = warden_env(tmp_path, upstreams)
    warden = WardenProcess(env, tmp_path / "warden.log").start()
    answered: set[str] = set()

    def kill_midway() -> None:
        if len(answered) >= KILL_AFTER and warden.process is not None and warden.process.poll() is None:
            warden.process.send_signal(signal.SIGKILL)
            warden.process.wait(5)

    try:
        asyncio.run(drive(warden.gateway, answered, lambda n: n < REQUESTS, kill_midway))
    finally:
        warden.stop()
    assert warden.process is not None and warden.process.returncode == -signal.SIGKILL
    assert KILL_AFTER <= len(answered) < REQUESTS, f"{len(answered)} answered"
    assert {int(i.split("-")[1]) % 2 for i in answered} == {0, 1}  # both surfaces were answered
    before_restart = len(audited_in_sqlite(tmp_path / "data"))

    with WardenProcess(env, tmp_path / "warden.log"):  # the spool is replayed at start
        deadline = time.monotonic() + 60
        while not answered <= set(audited_in_sqlite(tmp_path / "data")) and time.monotonic() < deadline:
            time.sleep(0.2)
    ids = audited_in_sqlite(tmp_path / "data")
    assert answered <= set(ids), f"{len(answered - set(ids))} answered requests have no audit event"
    assert len(ids) == len(set(ids)), "a replay duplicated events"
    assert set(ids) <= {f"load-{n}" for n in range(REQUESTS)}
    # The kill did leave events to replay: the test tested something.
    assert before_restart < len(answered), f"all {len(answered)} answered requests were stored before the kill"


def audited_in_postgres(name: str) -> list[str]:
    async def query() -> list[str]:
        connection = await asyncpg.connect(f"postgresql://127.0.0.1:5432/{name}")
        try:
            return [r[0] for r in await connection.fetch(AUDITED.replace("%%", "%"))]
        finally:
            await connection.close()

    return asyncio.run(query())


def forwarded(receiver: Receiver) -> list[str]:
    return [e["request_id"] for _, body in list(receiver.posts) for e in orjson.loads(body)["events"]
            if (e["surface"] == "ai" and e["action"].startswith("chat.completions:"))
            or (e["surface"] == "mcp" and e["action"] == "tools/call:plain__echo")]


def in_clickhouse(clickhouse: ClickHouseEndpoint, database: str) -> list[str]:
    sql = AUDITED.replace("%%", "%").replace("audit_events", f"{database}.audit_events FINAL")
    return clickhouse.query(sql).split()


@pytest.mark.postgres
def test_the_database_clickhouse_and_a_webhook_down_for_30_s_amid_a_load_lose_nothing(
        tmp_path: Path, upstreams: tuple[str, str], receiver: Receiver, clickhouse: ClickHouseEndpoint) -> None:
    name = asyncio.run(create_postgres_database())
    analytics = "zero_loss_" + name
    try:
        with tcp_proxy(("127.0.0.1", 5432)) as proxy:
            env = warden_env(tmp_path, upstreams, f"postgresql://127.0.0.1:{proxy.port}/{name}",
                             # keys are answered from memory while the database is away
                             keys={"cache_ttl_seconds": 600},
                             audit={"forward": [{"kind": "webhook", "name": "siem", "url": receiver.url}],
                                    "clickhouse": {"url": clickhouse.url, "database": analytics}})
            answered: set[str] = set()
            marks: dict[str, set[str]] = {}
            with WardenProcess(env, tmp_path / "warden.log") as warden:
                started = time.monotonic()
                phase = {"name": "before"}

                def outage() -> None:
                    elapsed = time.monotonic() - started
                    if phase["name"] == "before" and elapsed >= 2:
                        proxy.cut()
                        clickhouse.down()
                        receiver.failures = 1 << 30  # every post gets 503
                        phase["name"], marks["cut"] = "down", set(answered)
                    elif phase["name"] == "down" and elapsed >= 2 + OUTAGE_SECONDS:
                        proxy.restore()
                        clickhouse.up()
                        receiver.failures = 0
                        phase["name"], marks["restored"] = "after", set(answered)

                asyncio.run(drive(warden.gateway, answered, lambda n: time.monotonic() - started < OUTAGE_SECONDS + 6,
                                  outage, concurrency=4, pause=0.01))
                assert phase["name"] == "after"
                deadline = time.monotonic() + 90
                while time.monotonic() < deadline and not (
                        answered <= set(audited_in_postgres(name)) and answered <= set(forwarded(receiver))
                        and answered <= set(in_clickhouse(clickhouse, analytics))):
                    time.sleep(0.5)
            stored, posted = audited_in_postgres(name), forwarded(receiver)
            analysed = in_clickhouse(clickhouse, analytics)
    finally:
        asyncio.run(drop_postgres_database(name))
    log = (tmp_path / "warden.log").read_text()
    assert "audit write of" in log and "audit forwarding to siem failed" in log  # all really were down
    assert "audit forwarding to clickhouse failed" in log
    assert "the database refuses event" not in log  # down is not refusing: no event was stored as 'unstorable'
    # requests were answered (and audited into the spool) while both were down
    assert len(marks["restored"] - marks["cut"]) > 100
    assert answered <= set(stored), f"{len(answered - set(stored))} answered requests are not in the database"
    assert len(stored) == len(set(stored)), "the database holds an event twice"
    assert set(posted) == set(stored), "the webhook did not receive what the database holds"
    assert sorted(analysed) == sorted(stored), "ClickHouse does not hold what the database holds, each once"
