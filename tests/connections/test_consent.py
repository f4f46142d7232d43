"""Consent in band: a call that needs an account the caller has not linked asks for it through URL-mode
elicitation (handshake-era clients) or an input_required result (2026-07-28 clients), then goes on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from tests.connections.conftest import PASSWORD, OAuthWorld, console_session, first_admin
from tests.connections.test_oauth_links import SCOPES, authorize_at_server
from tests.interaction.process import WardenProcess, served
from tests.mcp.conftest import mcp_client, modern_client

ERIN = "wdn_" + "e" * 43
FRANK = "wdn_" + "f" * 43
GRACE = "wdn_" + "g" * 43


@pytest.fixture(scope="module")
def warden(tmp_path_factory: pytest.TempPathFactory, oauth_world: OAuthWorld) -> Iterator[WardenProcess]:
    tmp: Path = tmp_path_factory.mktemp("consent")
    with served(tmp, {
        "mcp_servers": [{"name": "notes", "transport": "streamable_http", "url": oauth_world.upstream,
                         "timeout_seconds": 10, "auth": {"mode": "oauth", "ownership": "per_user",
                                                         "requires_user_auth": True, "scopes": SCOPES}}],
        "api_keys": [{"name": name, "owner": f"{name}@example.com", "secret": secret, "surfaces": ["mcp"]}
                     for name, secret in (("erin", ERIN), ("frank", FRANK), ("grace", GRACE))],
    }) as process:
        first_admin(process, "root@example.com")
        with console_session(process, "root@example.com") as admin:
            for user in admin.get("/api/users").json()["items"]:
                if user["email"] != "root@example.com":
                    assert admin.patch(f"/api/users/{user['id']}", json={"password": PASSWORD}).status_code == 200
        yield process


def open_in_browser(warden: WardenProcess, email: str, url: str, account: str) -> None:
    """What the user does with the elicited link: open it signed in to the console, consent upstream."""
    with httpx.Client(timeout=30) as browser:
        assert browser.post(warden.console + "/api/auth/login", json={"email": email,
                                                                      "password": PASSWORD}).status_code == 200
        started = browser.get(url)
        assert started.status_code == 303, started.text
        callback = authorize_at_server(started.headers["location"], account)
        assert browser.get(callback).status_code == 200


async def test_a_session_client_is_asked_to_link_and_the_call_goes_on(warden: WardenProcess) -> None:
    asked: list[types.ElicitRequestURLParams] = []

    async def elicitation(context: Any, params: Any) -> types.ElicitResult:
        assert isinstance(params, types.ElicitRequestURLParams)
        asked.append(params)
        # The user opens the link after saying yes; the call waits for the account meanwhile.
        async def link_later() -> None:
            await anyio.sleep(0.5)
            await anyio.to_thread.run_sync(open_in_browser, warden, "erin@example.com", params.url, "erin")

        group.start_soon(link_later)
        return types.ElicitResult(action="accept")

    async with anyio.create_task_group() as group, \
            mcp_client(warden.gateway + "/mcp", ERIN, elicitation_callback=elicitation) as session:
        result = await session.call_tool("notes__whoami", {})
    assert len(asked) == 1 and asked[0].url.startswith(warden.console + "/connections/notes/connect")
    assert result.structured_content == {"account": "erin", "tool": "whoami"}


async def test_a_declined_elicitation_gets_the_error_with_the_link(warden: WardenProcess) -> None:
    async def decline(context: Any, params: Any) -> types.ElicitResult:
        return types.ElicitResult(action="decline")

    async with mcp_client(warden.gateway + "/mcp", FRANK, elicitation_callback=decline) as session:
        with pytest.raises(MCPError) as refused:
            await session.call_tool("notes__whoami", {})
    assert refused.value.error.code == -32050


async def test_a_2026_client_gets_input_required_and_its_retry_goes_on(warden: WardenProcess) -> None:
    async def unused(context: Any, params: Any) -> types.ElicitResult:
        raise AssertionError("2026-07-28 clients answer input_required themselves")

    async with modern_client(warden.gateway + "/mcp", GRACE, elicitation_callback=unused) as session:
        first = await session.call_tool("notes__whoami", {}, allow_input_required=True)
        assert isinstance(first, types.InputRequiredResult) and first.input_requests is not None
        (key, request), = first.input_requests.items()
        assert isinstance(request, types.ElicitRequest) and isinstance(request.params, types.ElicitRequestURLParams)
        await anyio.to_thread.run_sync(open_in_browser, warden, "grace@example.com", request.params.url, "grace")
        result = await session.call_tool("notes__whoami", {}, input_responses={key: types.ElicitResult(
            action="accept")}, request_state=first.request_state, allow_input_required=True)
    assert isinstance(result, types.CallToolResult)
    assert result.structured_content == {"account": "grace", "tool": "whoami"}


async def test_forged_request_state_is_refused(warden: WardenProcess) -> None:
    async with modern_client(warden.gateway + "/mcp", GRACE) as session:
        with pytest.raises(MCPError) as refused:
            await session.call_tool("notes__whoami", {}, request_state="warden-link:Zm9yZ2Vk",
                                    allow_input_required=True)
    assert refused.value.error.code == types.INVALID_PARAMS
