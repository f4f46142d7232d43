"""The credential model of an upstream: a shared static secret sent as configured (header and template, or a
query parameter), personal tokens linked per user, secrets write-only in the API and sealed at rest, and
upstream URLs on internal addresses refused with a clear message."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.connections.conftest import first_admin
from tests.interaction.process import WardenProcess, served
from tests.mcp.conftest import mcp_client

ALICE = "wdn_" + "a" * 43
SECRET = "static-secret-Zq81"


@pytest.fixture(scope="module")
def warden(tmp_path_factory: pytest.TempPathFactory, plain_upstream: str) -> Iterator[WardenProcess]:
    tmp: Path = tmp_path_factory.mktemp("credential-model")
    with served(tmp, {
        "mcp_servers": [
            {"name": "bearer", "transport": "streamable_http", "url": plain_upstream,
             "auth": {"mode": "static", "secret": SECRET}},
            {"name": "apikey", "transport": "streamable_http", "url": plain_upstream,
             "auth": {"mode": "static", "secret": SECRET, "header": "X-Api-Key", "template": "{token}"}},
            {"name": "query", "transport": "streamable_http", "url": plain_upstream,
             "auth": {"mode": "static", "secret": SECRET, "query_param": "api_key"}},
            {"name": "mine", "transport": "streamable_http", "url": plain_upstream,
             "auth": {"mode": "personal_token", "ownership": "per_user", "requires_user_auth": True}},
            {"name": "gone", "transport": "streamable_http", "url": "http://127.0.0.1:9/mcp", "timeout_seconds": 2,
             "auth": {"mode": "personal_token", "ownership": "per_user", "requires_user_auth": True}},
        ],
        "api_keys": [{"name": "alice", "owner": "alice@example.com", "secret": ALICE,
                      "surfaces": ["mcp", "management"]}],
    }) as process:
        first_admin(process, "alice@example.com")
        yield process


async def credentials_seen(warden: WardenProcess, tool: str) -> dict[str, Any]:
    async with mcp_client(warden.gateway + "/mcp", ALICE) as session:
        result = await session.call_tool(tool, {})
    assert result.structured_content is not None, result
    return result.structured_content


async def test_a_static_secret_is_sent_as_each_server_says(warden: WardenProcess) -> None:
    assert (await credentials_seen(warden, "bearer__credentials"))["authorization"] == f"Bearer {SECRET}"
    assert (await credentials_seen(warden, "apikey__credentials"))["x-api-key"] == SECRET
    query = await credentials_seen(warden, "query__credentials")
    assert query["query"] == {"api_key": SECRET} and query["authorization"] is None


async def test_a_personal_token_is_linked_per_user_and_sent_for_them(warden: WardenProcess) -> None:
    async with mcp_client(warden.gateway + "/mcp", ALICE) as session:
        assert not any(t.name.startswith("mine__") for t in (await session.list_tools()).tools)
    async with httpx.AsyncClient(base_url=warden.console, headers={"authorization": f"Bearer {ALICE}"}) as api:
        added = await api.post("/api/connections/mine/tokens", json={"label": "work", "token": "pat-alice-1"})
        assert added.status_code == 201 and "pat-alice-1" not in added.text
        assert added.json()["state"] == "connected" and added.json()["default"] is True
        assert (await credentials_seen(warden, "mine__credentials"))["authorization"] == "Bearer pat-alice-1"
        listed = (await api.get("/api/connections")).json()["items"]
        per_user = [i["server"] for i in listed if i["ownership"] == "per_user"]
        assert per_user == ["gone", "mine"] and "pat-alice-1" not in str(listed)
        assert (await api.delete("/api/connections/mine/work")).status_code == 204
    async with mcp_client(warden.gateway + "/mcp", ALICE) as session:
        assert not any(t.name.startswith("mine__") for t in (await session.list_tools()).tools)


def test_secrets_are_write_only_and_sealed(warden: WardenProcess) -> None:
    auth = {"authorization": f"Bearer {ALICE}"}
    view = httpx.get(warden.console + "/api/mcp/servers/bearer", headers=auth).json()
    assert view["auth"]["mode"] == "static" and view["auth"]["secrets_set"] == ["secret"]
    assert SECRET not in str(view)
    created = httpx.post(warden.console + "/api/mcp/servers", headers=auth, json={
        "name": "viaapi", "transport": "streamable_http", "url": "http://127.0.0.1:9/mcp",
        "auth": {"mode": "static", "secret": "api-secret-77", "header": "X-Token", "template": "{token}"}})
    assert created.status_code == 201 and "api-secret-77" not in created.text
    changed = httpx.patch(warden.console + "/api/mcp/servers/viaapi", headers=auth, json={
        "auth": {"mode": "static", "header": "X-Other", "template": "{token}"}})  # the secret is kept
    assert changed.status_code == 200 and changed.json()["auth"]["secrets_set"] == ["secret"]
    # Switched to a mode that reads no secret, the secret is not kept at rest: switching back needs it again.
    unauthenticated = httpx.patch(warden.console + "/api/mcp/servers/viaapi", headers=auth, json={
        "auth": {"mode": "none"}})
    assert unauthenticated.status_code == 200 and unauthenticated.json()["auth"]["secrets_set"] == []
    back = httpx.patch(warden.console + "/api/mcp/servers/viaapi", headers=auth, json={
        "auth": {"mode": "static", "header": "X-Other", "template": "{token}"}})
    assert back.status_code == 422 and back.json()["error"]["fields"][0]["field"] == "auth.secret", back.text
    database = (Path(warden.env["WARDEN_SERVER_DATA_DIR"]) / "warden.db").read_bytes()
    assert SECRET.encode() not in database and b"api-secret-77" not in database
    assert SECRET not in warden.log_path.read_text(errors="replace")


@pytest.mark.parametrize(("url", "why"), [
    ("http://169.254.169.254/mcp", "cloud metadata"),
    ("http://10.0.0.1/mcp", "private address"),
    ("http://127.0.0.2:9/mcp", "loopback"),  # the tests allow 127.0.0.1 only
    ("http://[::1]:9/mcp", "loopback"),
])
def test_an_internal_server_url_is_refused_with_a_clear_message(warden: WardenProcess, url: str, why: str) -> None:
    answer = httpx.post(warden.console + "/api/mcp/servers", headers={"authorization": f"Bearer {ALICE}"}, json={
        "name": "internal", "transport": "streamable_http", "url": url})
    assert answer.status_code == 422
    fields = answer.json()["error"]["fields"]
    assert fields[0]["field"] == "url" and why in fields[0]["message"]
    assert "security.outbound_allow" in fields[0]["message"]


def test_invalid_credential_settings_are_refused(warden: WardenProcess) -> None:
    auth = {"authorization": f"Bearer {ALICE}"}
    no_secret = httpx.post(warden.console + "/api/mcp/servers", headers=auth, json={
        "name": "nosecret", "transport": "streamable_http", "url": "http://127.0.0.1:9/mcp",
        "auth": {"mode": "static"}})
    assert no_secret.status_code == 422 and "auth.secret" in no_secret.text
    shared_token = httpx.post(warden.console + "/api/mcp/servers", headers=auth, json={
        "name": "sharedpat", "transport": "streamable_http", "url": "http://127.0.0.1:9/mcp",
        "auth": {"mode": "personal_token"}})
    assert shared_token.status_code == 422 and "auth.ownership" in shared_token.text


def test_connection_to_a_dead_server_reports_unreachable(warden: WardenProcess) -> None:
    report = httpx.post(warden.console + "/api/connections/gone/test", json={},
                        headers={"authorization": f"Bearer {ALICE}"}, timeout=30).json()
    assert report["verdict"] == "unreachable" and "Connect" in report["detail"]


def test_removing_a_server_removes_its_linked_accounts(warden: WardenProcess, plain_upstream: str) -> None:
    with httpx.Client(base_url=warden.console, headers={"authorization": f"Bearer {ALICE}"}) as api:
        assert api.post("/api/mcp/servers", json={
            "name": "brief", "transport": "streamable_http", "url": plain_upstream,
            "auth": {"mode": "personal_token", "ownership": "per_user"}}).status_code == 201
        assert api.post("/api/connections/brief/tokens", json={"token": "pat-brief"}).status_code == 201
        assert api.delete("/api/mcp/servers/brief").status_code == 204
        listed = api.get("/api/connections").json()["items"]
    assert "brief" not in [item["server"] for item in listed]
    with sqlite3.connect(Path(warden.env["WARDEN_SERVER_DATA_DIR"]) / "warden.db") as db:
        assert db.execute("SELECT COUNT(*) FROM upstream_links WHERE server = 'brief'").fetchone() == (0,)


def test_shared_servers_are_listed_with_the_state_of_wardens_own_session(warden: WardenProcess) -> None:
    with httpx.Client(base_url=warden.console, headers={"authorization": f"Bearer {ALICE}"}, timeout=30) as api:
        listed = {item["server"]: item for item in api.get("/api/connections").json()["items"]}
        assert listed["bearer"]["ownership"] == "shared" and listed["bearer"]["state"] == "connected"
        assert listed["bearer"]["accounts"] == []
        report = api.post("/api/connections/bearer/test", json={"tool": "credentials"}).json()
    assert report["verdict"] == "tool_call_ok" and report["account"] is None
