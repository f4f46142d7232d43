"""The registration wizard's probe against real upstreams: a server behind OAuth (its authorization server
offers Dynamic Client Registration), an open one, a stdio one, and one that does not answer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.connections.conftest import OAuthWorld, console_session, first_admin
from tests.interaction.process import free_port, served
from tests.mcp.conftest import stdio_server

ADMIN = "wizard@example.com"


@pytest.fixture(scope="module")
def admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    tmp: Path = tmp_path_factory.mktemp("wizard")
    with served(tmp, {}) as warden:
        first_admin(warden, ADMIN)
        with console_session(warden, ADMIN) as client:
            yield client


def probe(admin: httpx.Client, **body: object) -> dict[str, Any]:
    answer = admin.post("/api/mcp/wizard/probe", json=body)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def test_a_server_behind_oauth_is_auth_required_and_registered_by_dcr(admin: httpx.Client,
                                                                      oauth_world: OAuthWorld) -> None:
    report = probe(admin, transport="streamable_http", url=oauth_world.upstream)
    assert report["verdict"] == "auth_required" and report["tools"] == []
    advice = report["auth"]
    assert (advice["mode"], advice["ownership"], advice["dcr"]) == ("oauth", "per_user", True)
    assert advice["authorization_server"] == oauth_world.issuer


def test_an_open_server_lists_its_tools_and_needs_no_auth(admin: httpx.Client, plain_upstream: str) -> None:
    report = probe(admin, transport="streamable_http", url=plain_upstream)
    assert report["verdict"] == "auth_ok" and "credentials" in report["tools"]
    assert report["auth"]["mode"] == "none"
    with_token = probe(admin, transport="streamable_http", url=plain_upstream, token="tok-123")
    assert with_token["auth"]["mode"] == "static"


def test_a_stdio_server_is_started_and_listed(admin: httpx.Client) -> None:
    spec = stdio_server("wizard")
    report = probe(admin, transport="stdio", command=spec["command"], args=spec["args"], env=spec["env"])
    assert report["verdict"] == "auth_ok" and "echo" in report["tools"]


def test_a_silent_server_is_unreachable(admin: httpx.Client) -> None:
    report = probe(admin, transport="streamable_http", url=f"http://127.0.0.1:{free_port()}/mcp", timeout_seconds=3)
    assert report["verdict"] == "unreachable" and report["auth"] is None


def test_bad_probe_input_is_named(admin: httpx.Client) -> None:
    no_command = admin.post("/api/mcp/wizard/probe", json={"transport": "stdio"})
    assert no_command.status_code == 422 and no_command.json()["error"]["fields"][0]["field"] == "command"
    no_url = admin.post("/api/mcp/wizard/probe", json={"transport": "sse"})
    assert no_url.status_code == 422 and no_url.json()["error"]["fields"][0]["field"] == "url"
    metadata = admin.post("/api/mcp/wizard/probe", json={"transport": "streamable_http",
                                                          "url": "http://169.254.169.254/mcp"})
    assert metadata.status_code == 422 and metadata.json()["error"]["fields"][0]["field"] == "url"
