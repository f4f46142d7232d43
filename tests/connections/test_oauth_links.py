"""Users link their own accounts on an OAuth-protected upstream, end to end against a real authorization server
(oidc-provider: DCR, PKCE S256, resource indicators, JWT access tokens of 4 s) and an upstream that checks every
token: discovery -> registration -> authorize -> callback -> per-user catalogs and calls -> refresh once under
concurrency -> revocation -> -32050 with the connections page. Then the attacks on the flow."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit, urlunsplit

import anyio
import httpx
import pytest
from mcp.shared.exceptions import MCPError

from tests.conftest import eventually
from tests.connections.conftest import PASSWORD, OAuthWorld, console_session, first_admin
from tests.interaction.process import WardenProcess, served
from tests.mcp.conftest import mcp_client

ALICE = "wdn_" + "a" * 43
BOB = "wdn_" + "b" * 43
ALICE_HOME = "wdn_" + "h" * 43  # pinned to alice's "home" account
ALICE_NOWHERE = "wdn_" + "n" * 43  # pinned to an account alice never links
SCOPES = ["openid", "offline_access", "mcp"]


@pytest.fixture(scope="module")
def warden(tmp_path_factory: pytest.TempPathFactory, oauth_world: OAuthWorld) -> Iterator[WardenProcess]:
    tmp: Path = tmp_path_factory.mktemp("oauth-links")
    with served(tmp, {
        "mcp": {"refresh_ahead_seconds": 1},
        "mcp_servers": [{"name": "notes", "transport": "streamable_http", "url": oauth_world.upstream,
                         "timeout_seconds": 10, "auth": {"mode": "oauth", "ownership": "per_user",
                                                         "requires_user_auth": True, "scopes": SCOPES}}],
        "api_keys": [
            {"name": "alice", "owner": "alice@example.com", "secret": ALICE, "surfaces": ["mcp"]},
            {"name": "bob", "owner": "bob@example.com", "secret": BOB, "surfaces": ["mcp"]},
            {"name": "alice-home", "owner": "alice@example.com", "secret": ALICE_HOME, "surfaces": ["mcp"],
             "pinned_accounts": {"notes": "home"}},
            {"name": "alice-nowhere", "owner": "alice@example.com", "secret": ALICE_NOWHERE, "surfaces": ["mcp"],
             "pinned_accounts": {"notes": "nowhere"}},
        ],
    }) as process:
        first_admin(process, "alice@example.com")
        with console_session(process, "alice@example.com") as admin:
            bob = next(u for u in admin.get("/api/users").json()["items"] if u["email"] == "bob@example.com")
            assert admin.patch(f"/api/users/{bob['id']}", json={"password": PASSWORD}).status_code == 200
        yield process


def authorize_at_server(authorize_url: str, account: str) -> str:
    """Follow the authorization server's redirects as a browser would, logging in as ``account`` and
    consenting; the URL it finally sends the browser to (Warden's callback, or an error page)."""
    with httpx.Client(timeout=30) as browser:
        response = browser.get(authorize_url, headers={"x-test-user": account})
        origin = urlunsplit((*urlsplit(authorize_url)[:2], "", "", ""))
        while response.status_code in (302, 303):
            location = urljoin(str(response.url), response.headers["location"])
            if not location.startswith(origin):
                return location
            response = browser.get(location, headers={"x-test-user": account})
    raise AssertionError(f"the authorization server did not redirect back: {response.status_code} {response.text}")


def start(session: httpx.Client, label: str) -> str:
    answer = session.post("/api/connections/notes/authorize", json={"label": label})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["authorize_url"])


def link(warden: WardenProcess, email: str, label: str, account: str) -> None:
    with console_session(warden, email) as session:
        callback = authorize_at_server(start(session, label), account)
        assert callback.startswith(warden.console + "/oauth/callback?")
        done = session.get(callback)
    assert done.status_code == 200 and 'id="linked"' in done.text, done.text
    assert 'url=/connections?linked=notes"' in done.text


def notes_of(warden: WardenProcess, email: str) -> dict[str, object]:
    with console_session(warden, email) as session:
        return notes(session)


def notes(session: httpx.Client) -> dict[str, object]:
    return next(item for item in session.get("/api/connections").json()["items"] if item["server"] == "notes")


async def tool_names(warden: WardenProcess, key: str) -> set[str]:
    async with mcp_client(warden.gateway + "/mcp", key) as session:
        return {tool.name for tool in (await session.list_tools()).tools}


async def whoami(warden: WardenProcess, key: str) -> str:
    async with mcp_client(warden.gateway + "/mcp", key) as session:
        result = await session.call_tool("notes__whoami", {})
    assert not result.is_error and result.structured_content is not None, result
    return str(result.structured_content["account"])


def test_connection_without_an_account_reports_auth_required(warden: WardenProcess) -> None:
    with console_session(warden, "bob@example.com") as session:
        report = session.post("/api/connections/notes/test", json={}).json()
    assert report["verdict"] == "auth_required" and "401" in report["detail"]
    assert report["resource_metadata"].endswith("/.well-known/oauth-protected-resource/mcp")


async def test_unlinked_users_see_nothing_and_calls_say_where_to_link(warden: WardenProcess) -> None:
    assert await tool_names(warden, BOB) == set()
    async with mcp_client(warden.gateway + "/mcp", BOB) as session:
        with pytest.raises(MCPError) as refused:
            await session.call_tool("notes__whoami", {})
    assert refused.value.error.code == -32050
    data = refused.value.error.data
    assert isinstance(data, dict) and data["connect_url"].endswith("/connections?server=notes")
    assert data["connect_url"] in refused.value.error.message


async def test_link_call_refresh_once_under_concurrency_then_revocation(warden: WardenProcess,
                                                                        oauth_world: OAuthWorld) -> None:
    link(warden, "alice@example.com", "work", "alice")
    state = notes_of(warden, "alice@example.com")
    assert state["state"] == "connected"
    accounts = state["accounts"]
    assert isinstance(accounts, list) and accounts[0]["label"] == "work" and accounts[0]["default"] is True
    assert "alice" in accounts[0]["upstream_subject"]

    assert await tool_names(warden, ALICE) == {"notes__whoami", "notes__alice_only"}
    assert await whoami(warden, ALICE) == "alice"
    with console_session(warden, "alice@example.com") as console:
        listed = console.post("/api/connections/notes/test", json={}).json()
        called = console.post("/api/connections/notes/test", json={"tool": "whoami"}).json()
        unknown = console.post("/api/connections/notes/test", json={"label": "nope"})
    assert (listed["verdict"], listed["account"], set(listed["tools"])) == ("auth_ok", "work",
                                                                           {"whoami", "alice_only"})
    assert called["verdict"] == "tool_call_ok"
    assert unknown.status_code == 404

    # The 4-second access token expires; 20 concurrent calls then share one refresh.
    await anyio.sleep(4.5)
    before = oauth_world.stats().get("alice", 0)
    seen_before = len(oauth_world.seen())
    accounts_called: list[str] = []

    async def call() -> None:  # each on a session of its own: 20 upstream sessions open at once
        accounts_called.append(await whoami(warden, ALICE))

    async with anyio.create_task_group() as group:
        for _ in range(20):
            group.start_soon(call)
    assert accounts_called == ["alice"] * 20
    renewals = [line for line in warden.log_path.read_text().splitlines() if "renewed the token" in line]
    assert oauth_world.stats().get("alice", 0) - before == 1, renewals  # why each renewal happened, if two
    tokens = {entry["token"] for entry in oauth_world.seen()[seen_before:]}
    assert len(tokens) == 1  # every request after the refresh carried the one renewed token

    # Revoked at the authorization server: the upstream refuses the token, the refresh is refused too.
    oauth_world.revoke("alice")
    async with mcp_client(warden.gateway + "/mcp", ALICE) as client:
        with pytest.raises(MCPError) as refused:
            await client.call_tool("notes__whoami", {})
    assert refused.value.error.code == -32050
    assert "/connections?server=notes" in refused.value.error.message
    assert notes_of(warden, "alice@example.com")["state"] == "needs_authorization"

    # Re-authorizing brings the account back.
    link(warden, "alice@example.com", "work", "alice")
    assert notes_of(warden, "alice@example.com")["state"] == "connected"
    assert await whoami(warden, ALICE) == "alice"


async def test_two_users_see_their_own_catalogs_and_call_with_their_own_tokens(
        warden: WardenProcess, oauth_world: OAuthWorld) -> None:
    link(warden, "bob@example.com", "default", "bob")
    assert await tool_names(warden, BOB) == {"notes__whoami", "notes__bob_only"}
    seen_before = len(oauth_world.seen())
    assert await whoami(warden, BOB) == "bob"
    assert {entry["account"] for entry in oauth_world.seen()[seen_before:]} == {"bob"}


async def test_a_pinned_key_uses_its_account_and_never_another(warden: WardenProcess) -> None:
    link(warden, "alice@example.com", "home", "alice-home")
    assert await whoami(warden, ALICE_HOME) == "alice-home"
    assert await whoami(warden, ALICE) == "alice"  # the default account is still "work"
    async with mcp_client(warden.gateway + "/mcp", ALICE_NOWHERE) as session:
        assert (await session.list_tools()).tools == []
        with pytest.raises(MCPError) as refused:
            await session.call_tool("notes__whoami", {})
    assert refused.value.error.code == -32050


async def test_unlink_makes_the_other_account_default(warden: WardenProcess) -> None:
    with console_session(warden, "alice@example.com") as session:
        assert session.post("/api/connections/notes/home/default").status_code == 204
        assert await whoami(warden, ALICE) == "alice-home"
        assert session.delete("/api/connections/notes/home").status_code == 204
        accounts = notes(session)["accounts"]
    assert isinstance(accounts, list) and [(a["label"], a["default"]) for a in accounts] == [("work", True)]
    assert await whoami(warden, ALICE) == "alice"


def test_forged_and_replayed_state_are_rejected(warden: WardenProcess) -> None:
    with console_session(warden, "bob@example.com") as session:
        forged = session.get("/oauth/callback", params={"state": "forged", "code": "anything"})
        assert forged.status_code == 400 and "unknown, already used or expired" in forged.text
        callback = authorize_at_server(start(session, "default"), "bob")
        assert session.get(callback).status_code == 200
        replayed = session.get(callback)
    assert replayed.status_code == 400 and "already used" in replayed.text


def test_the_callback_needs_no_session_cookie_only_the_browsers_binding(warden: WardenProcess) -> None:
    """Arriving from the authorization server is a cross-site navigation: the console's SameSite=Strict
    session cookie stays behind, the Lax binding cookie set when the authorization started comes along."""
    with console_session(warden, "bob@example.com") as session:
        callback = authorize_at_server(start(session, "cross"), "bob")
        binding = {name: value for name, value in session.cookies.items() if name.startswith("warden_oauth_")}
    assert len(binding) == 1
    with httpx.Client(cookies=binding, timeout=30) as arriving:
        linked = arriving.get(callback)
    assert linked.status_code == 200 and 'id="linked"' in linked.text
    with console_session(warden, "bob@example.com") as session:
        labels = [a["label"] for a in notes(session)["accounts"]]  # type: ignore[union-attr]
        assert "cross" in labels
        assert session.delete("/api/connections/notes/cross").status_code == 204


def test_a_callback_for_another_user_is_rejected(warden: WardenProcess) -> None:
    with console_session(warden, "alice@example.com") as alice, console_session(warden, "bob@example.com") as bob:
        callback = authorize_at_server(start(alice, "stolen"), "alice")
        taken = bob.get(callback)  # bob's browser opens the callback of alice's authorization
        assert taken.status_code == 400 and "another user" in taken.text
        labels = [a["label"] for a in notes(bob)["accounts"]]  # type: ignore[union-attr]
    assert "stolen" not in labels


def test_a_redirect_uri_other_than_wardens_is_refused(warden: WardenProcess) -> None:
    with console_session(warden, "bob@example.com") as session:
        parts = urlsplit(start(session, "default"))
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query["redirect_uri"] = "https://attacker.example/callback"
    tampered = urlunsplit(parts._replace(query=urlencode(query)))
    with httpx.Client(timeout=30) as browser:
        answer = browser.get(tampered, headers={"x-test-user": "bob"})
    assert answer.status_code == 400 and "attacker.example" not in answer.headers.get("location", "")
    assert "redirect_uri" in answer.text


def test_an_api_key_cannot_start_an_authorization(warden: WardenProcess) -> None:
    answer = httpx.post(warden.console + "/api/connections/notes/authorize", json={"label": "x"},
                        headers={"authorization": f"Bearer {ALICE}"})
    assert answer.status_code in (401, 403, 422)


def mcp_calls(warden: WardenProcess) -> list[dict[str, Any]]:
    with console_session(warden, "alice@example.com") as admin:
        return list(admin.get("/api/mcp/calls").json()["items"])


async def test_calls_are_audited_with_the_account_they_ran_as(warden: WardenProcess) -> None:
    await whoami(warden, BOB)

    async def audited() -> bool:
        calls = mcp_calls(warden)
        bobs = [c for c in calls if c["detail"]["tool"] == "notes__whoami" and c["detail"].get("account")]
        return any(c["detail"]["upstream_subject"].endswith("#bob") for c in bobs)

    assert await eventually(audited)
    refused = [c for c in mcp_calls(warden) if c["outcome"] == "refused" and c["error_code"] == -32050]
    assert refused  # calls without a usable account are audited too


def test_tokens_never_appear_in_logs_audit_or_api_answers(warden: WardenProcess, oauth_world: OAuthWorld) -> None:
    tokens = {entry["token"] for entry in oauth_world.seen()}
    assert tokens
    with console_session(warden, "alice@example.com") as admin:
        answers = "".join(admin.get(path).text for path in ("/api/connections", "/api/mcp/servers",
                                                             "/api/mcp/servers/notes", "/api/mcp/calls"))
    log = warden.log_path.read_text(errors="replace")
    database = (Path(warden.env["WARDEN_SERVER_DATA_DIR"]) / "warden.db").read_bytes()
    for token in tokens:
        assert token not in answers
        assert token not in log
        assert token.encode() not in database
