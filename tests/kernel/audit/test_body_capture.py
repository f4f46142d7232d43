"""Body capture: AI request and response bodies and MCP tool arguments and results, each switched on in the
settings without a restart, redacted before they are written, offloaded (not truncated) past body_max_bytes, and
readable only with audit:read_bodies."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import pytest

from broker.app import Warden, create_app
from broker.kernel.audit.adapters.store_search import AuditFilter, StoreAuditSearch
from broker.kernel.audit.body_store import S3BodyStore
from tests.ai.fake_providers import launched
from tests.conftest import STRONG_PASSWORD, FakeClock, asgi_client, eventually, make_config
from tests.console.conftest import sign_in, two_instances
from tests.kernel.audit.test_body_store import BUCKET, s3_endpoint
from tests.mcp.conftest import served_plain_upstream
from tests.webhook_receiver import Receiver

__all__ = ["s3_endpoint"]  # the fixture
KEY = "wdn_" + "c" * 43
EVERYTHING = {"ai_request_bodies": True, "ai_response_bodies": True, "mcp_arguments": True, "mcp_results": True}
SECRETS = "I am ann@example.com, card 4111 1111 1111 1111, key sk-proj-abcdefghijklmnopqrstuvwxyz0123"
TOOL_CALL_HEADERS = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2026-07-28",
                     "mcp-method": "tools/call", "mcp-name": "plain__echo"}
META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"}}


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[str, str]]:
    with launched() as provider, served_plain_upstream() as mcp:
        yield provider, mcp


@pytest.fixture
async def warden(tmp_path: Path, database_url: str, clock: FakeClock, upstreams: tuple[str, str]
                 ) -> AsyncIterator[Warden]:
    provider, mcp = upstreams
    config = make_config(
        tmp_path, database_url,
        providers=[{"name": "fake", "type": "openai", "base_url": provider + "/v1", "api_key": "sk-fake"}],
        mcp_servers=[{"name": "plain", "transport": "streamable_http", "url": mcp, "timeout_seconds": 5}],
        api_keys=[{"name": "dev", "owner": "dev@example.com", "secret": KEY, "surfaces": ["ai", "mcp"]}])
    async with create_app(config, clock) as app:
        yield app


@pytest.fixture
async def admin(warden: Warden) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(warden.console, "http://console.test") as console:
        answer = await console.post("/api/setup", json={"email": "admin@example.com", "password": STRONG_PASSWORD})
        assert answer.status_code == 201
        await sign_in(console, "admin@example.com")
        yield console


@pytest.fixture
async def gateway(warden: Warden) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(warden.gateway, "http://gateway.test") as client:
        client.headers["authorization"] = f"Bearer {KEY}"
        yield client


async def audited(warden: Warden, request_id: str) -> dict[str, Any]:
    query = StoreAuditSearch(warden.kernel.db)

    async def found() -> bool:
        return bool(await query.events(AuditFilter(request_id=request_id), 1))

    assert await eventually(found)
    return (await query.events(AuditFilter(request_id=request_id), 1))[0]


async def chat(gateway: httpx.AsyncClient, request_id: str, content: str = SECRETS, stream: bool = False) -> str:
    answer = await gateway.post("/v1/chat/completions", headers={"x-request-id": request_id}, json={
        "model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": content}]})
    assert answer.status_code == 200, answer.text
    return answer.text


async def test_bodies_are_not_captured_until_switched_on_then_are_redacted_at_capture(
        warden: Warden, admin: httpx.AsyncClient, gateway: httpx.AsyncClient) -> None:
    await chat(gateway, "before")
    assert "bodies" not in (await audited(warden, "before"))["detail"]
    assert (await admin.put("/api/settings/audit", json=EVERYTHING)).status_code == 200

    await chat(gateway, "after")
    event = await audited(warden, "after")
    summary = event["detail"]["bodies"]
    assert summary["request"]["redactions"] == {"email": 1, "card": 1, "api_key": 1}
    assert summary["request"]["offloaded"] is False and summary["request"]["bytes"] > len(SECRETS)
    bodies = (await admin.get(f"/api/audit/events/{event['id']}/bodies")).json()["bodies"]
    request = bodies["request"]["text"]
    assert "[REDACTED:email]" in request and "ann@example.com" not in request and "4111" not in request
    assert '"model":"gpt-4o-mini"' in request.replace(" ", "")
    assert "choices" in bodies["response"]["text"]
    # Nothing of the secrets reached the database file or the spool either.
    data = anyio.Path(warden.config.server.data_dir)
    for path in [p async for p in data.rglob("*.spool")] + [p async for p in data.glob("warden.db*")]:
        assert b"ann@example.com" not in await path.read_bytes(), path


async def test_a_streamed_answer_is_captured_whole(warden: Warden, admin: httpx.AsyncClient,
                                                   gateway: httpx.AsyncClient) -> None:
    await admin.put("/api/settings/audit", json=EVERYTHING)
    sent = await chat(gateway, "streamed", stream=True)
    event = await audited(warden, "streamed")
    bodies = (await admin.get(f"/api/audit/events/{event['id']}/bodies")).json()["bodies"]
    assert bodies["response"]["text"] == sent and sent.count("data: ") > 2


async def test_bodies_over_the_limit_are_offloaded_whole_and_read_back_transparently(
        warden: Warden, admin: httpx.AsyncClient, gateway: httpx.AsyncClient) -> None:
    await admin.put("/api/settings/audit", json={**EVERYTHING, "body_max_bytes": 1024})
    long = "lorem ipsum " * 1000 + "bob@example.org"
    await chat(gateway, "long", content=long)
    event = await audited(warden, "long")
    assert event["detail"]["bodies"]["request"]["offloaded"] is True
    row = await warden.kernel.db.fetchrow(
        "SELECT content, offload_key FROM audit_bodies WHERE event_id = ? AND part = 'request'", event["id"])
    assert row is not None and row["content"] is None
    assert row["offload_key"] == time.strftime("%Y/%m/%d/", time.gmtime(event["at"])) + f"{event['id']}.request"
    stored = Path(warden.config.server.data_dir) / "audit-bodies" / row["offload_key"]
    assert stored.is_file() and b"bob@example.org" not in stored.read_bytes()
    text = (await admin.get(f"/api/audit/events/{event['id']}/bodies")).json()["bodies"]["request"]["text"]
    assert text.count("lorem ipsum") == 1000 and text.endswith('[REDACTED:email]"}]}')  # whole, not truncated


async def test_tool_arguments_and_results_are_captured(warden: Warden, admin: httpx.AsyncClient,
                                                       gateway: httpx.AsyncClient) -> None:
    await admin.put("/api/settings/audit", json={"mcp_arguments": True, "mcp_results": True})
    answer = await gateway.post("/mcp", headers={**TOOL_CALL_HEADERS, "x-request-id": "tool"}, json={
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "plain__echo", "arguments": {"text": "mail me at joe@example.com"}, "_meta": META}})
    assert answer.status_code == 200 and "result" in answer.json(), answer.text
    event = await audited(warden, "tool")
    assert event["detail"]["bodies"]["arguments"]["redactions"] == {"email": 1}
    bodies = (await admin.get(f"/api/audit/events/{event['id']}/bodies")).json()["bodies"]
    assert bodies["arguments"]["text"] == '{"text":"mail me at [REDACTED:email]"}'
    assert "[REDACTED:email]" in bodies["result"]["text"] and "joe@" not in bodies["result"]["text"]


async def test_reading_bodies_needs_audit_read_bodies(warden: Warden, admin: httpx.AsyncClient,
                                                     gateway: httpx.AsyncClient) -> None:
    await admin.put("/api/settings/audit", json=EVERYTHING)
    await chat(gateway, "private")
    event = await audited(warden, "private")
    created = await admin.post("/api/users", json={"email": "view@example.com", "password": STRONG_PASSWORD,
                                                   "roles": ["viewer"]})
    assert created.status_code == 201, created.text
    async with asgi_client(warden.console, "http://console.test") as viewer:
        await sign_in(viewer, "view@example.com")
        assert (await viewer.get(f"/api/audit/events/{event['id']}")).status_code == 200  # audit:read
        refused = await viewer.get(f"/api/audit/events/{event['id']}/bodies")
        assert refused.status_code == 403 and "audit:read_bodies" in refused.text
        assert (await viewer.get("/api/settings/audit")).status_code == 403
        assert (await viewer.put("/api/settings/audit", json=EVERYTHING)).status_code == 403
    assert (await admin.get("/api/audit/events/nope/bodies")).status_code == 404


async def test_bad_settings_are_refused_naming_the_field_and_change_nothing(admin: httpx.AsyncClient) -> None:
    for body, field in [
            ({"redaction_patterns": [{"name": "x", "pattern": "(a)\\1"}]}, "redaction_patterns.0.pattern"),
            ({"body_max_bytes": 10}, "body_max_bytes"), ({"capture_everything": True}, "capture_everything")]:
        answer = await admin.put("/api/settings/audit", json=body)
        assert answer.status_code == 422 and field in answer.text, answer.text
    assert (await admin.get("/api/settings/audit")).json()["mcp_arguments"] is False


async def test_admin_patterns_apply_at_once(warden: Warden, admin: httpx.AsyncClient,
                                            gateway: httpx.AsyncClient) -> None:
    await admin.put("/api/settings/audit", json={
        "ai_request_bodies": True, "redaction_patterns": [{"name": "order", "pattern": "ORD-[0-9]{6}"}]})
    await chat(gateway, "order", content="where is ORD-123456?")
    event = await audited(warden, "order")
    assert event["detail"]["bodies"]["request"]["redactions"] == {"order": 1}


@pytest.mark.postgres
@pytest.mark.redis
async def test_a_settings_change_applies_on_every_instance_without_a_restart(tmp_path: Path, postgres_url: str,
                                                                             clock: FakeClock) -> None:
    async with two_instances(tmp_path, postgres_url, clock) as (_, other, console):
        restart = other.kernel.config
        assert not other.kernel.capture.wants("result")
        assert (await console.put("/api/settings/audit", json={"mcp_results": True})).status_code == 200

        async def applied() -> bool:
            return other.kernel.capture.wants("result")

        assert await eventually(applied)
    async with create_app(restart, clock) as restarted:  # and it is what a starting instance reads
        assert restarted.kernel.capture.wants("result") and not restarted.kernel.capture.wants("request")


async def test_forwarding_channels_get_the_sizes_and_redactions_but_never_the_bodies(
        tmp_path: Path, clock: FakeClock, upstreams: tuple[str, str], receiver: Receiver) -> None:
    config = make_config(
        tmp_path, "", audit={"capture": EVERYTHING,
                             "forward": [{"kind": "webhook", "name": "siem", "url": receiver.url}]},
        providers=[{"name": "fake", "type": "openai", "base_url": upstreams[0] + "/v1", "api_key": "sk-fake"}],
        api_keys=[{"name": "dev", "owner": "dev@example.com", "secret": KEY, "surfaces": ["ai"]}])
    async with create_app(config, clock) as app, asgi_client(app.gateway, "http://gateway.test") as client:
        client.headers["authorization"] = f"Bearer {KEY}"
        await chat(client, "forwarded")

        async def posted() -> bool:
            return bool(receiver.posts)

        assert await eventually(posted)
    event = orjson.loads(receiver.posts[0][1])["events"][0]
    assert "bodies" not in event and event["detail"]["bodies"]["request"]["redactions"]["email"] == 1
    assert b"REDACTED" not in receiver.posts[0][1] and b"lorem" not in receiver.posts[0][1]


async def test_bodies_over_the_limit_go_to_s3_when_configured(tmp_path: Path, clock: FakeClock,
                                                              upstreams: tuple[str, str], s3_endpoint: str) -> None:
    config = make_config(
        tmp_path, "", audit={"capture": {**EVERYTHING, "body_max_bytes": 1024}, "offload": {
            "s3_endpoint": s3_endpoint, "s3_bucket": BUCKET, "s3_region": "eu-west-1",
            "s3_access_key_id": "AKIAEXAMPLEEXAMPLE00", "s3_secret_access_key": "secret/example"}},
        providers=[{"name": "fake", "type": "openai", "base_url": upstreams[0] + "/v1", "api_key": "sk-fake"}],
        api_keys=[{"name": "dev", "owner": "dev@example.com", "secret": KEY, "surfaces": ["ai"]}])
    async with create_app(config, clock) as app, asgi_client(app.gateway, "http://gateway.test") as client, \
            asgi_client(app.console, "http://console.test") as console:
        client.headers["authorization"] = f"Bearer {KEY}"
        await chat(client, "to-s3", content="x" * 5000)
        event = await audited(app, "to-s3")
        await console.post("/api/setup", json={"email": "admin@example.com", "password": STRONG_PASSWORD})
        await sign_in(console, "admin@example.com")
        bodies = (await console.get(f"/api/audit/events/{event['id']}/bodies")).json()["bodies"]
    assert bodies["request"]["offloaded"] and "x" * 5000 in bodies["request"]["text"]
    assert not (Path(config.server.data_dir) / "audit-bodies").exists()
    key = f"{time.strftime('%Y/%m/%d', time.gmtime(event['at']))}/{event['id']}.request"  # under the prefix
    bucket = S3BodyStore(s3_endpoint, BUCKET, "eu-west-1", "AKIAEXAMPLEEXAMPLE00", "secret/example", "warden-audit/")
    assert b"x" * 5000 in await bucket.get(key)
    await bucket.aclose()
