"""MCP clients sign in to Warden's own /mcp by OAuth: the official SDK's OAuth support discovers Warden's
authorization server from the 401, registers, sends the user to the consent page (a signed-in console user
allows it), exchanges the code and calls a tool; then the attacks on the authorization server."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import httpx2
import pytest
from mcp import ClientSession
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

from tests.connections.conftest import console_session, first_admin
from tests.interaction.process import WardenProcess, served

REDIRECT = "http://127.0.0.1:9/callback"


@pytest.fixture(scope="module")
def warden(tmp_path_factory: pytest.TempPathFactory, plain_upstream: str) -> Iterator[WardenProcess]:
    tmp: Path = tmp_path_factory.mktemp("downstream-oauth")
    with served(tmp, {"mcp_servers": [{"name": "plain", "transport": "streamable_http", "url": plain_upstream}]}
                ) as process:
        first_admin(process, "alice@example.com")
        yield process


@contextmanager
def signed_in(warden: WardenProcess) -> Iterator[httpx.Client]:
    with console_session(warden, "alice@example.com") as browser:
        yield browser


def consent(warden: WardenProcess, authorize_url: str, allow: bool = True) -> str:
    """The signed-in user opens the authorization URL and answers the consent page: where the browser goes."""
    with signed_in(warden) as browser:
        page = browser.get(authorize_url)
        assert page.status_code == 200, page.text
        request_id = page.text.split('data-request="', 1)[1].split('"', 1)[0]
        answer = browser.post("/api/oauth/decision", json={"request": request_id, "allow": allow})
        assert answer.status_code == 200, answer.text
        return str(answer.json()["redirect"])


class MemoryStorage:
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


async def test_the_sdk_client_signs_in_by_oauth_and_calls_a_tool(warden: WardenProcess) -> None:
    storage = MemoryStorage()
    landed: list[str] = []

    async def redirect_handler(url: str) -> None:
        landed.append(consent(warden, url))

    async def callback_handler() -> AuthorizationCodeResult:
        query = parse_qs(urlsplit(landed[-1]).query)
        return AuthorizationCodeResult(code=query["code"][0], state=query["state"][0],
                                       iss=query.get("iss", [None])[0])

    provider = OAuthClientProvider(
        warden.gateway + "/mcp", OAuthClientMetadata(redirect_uris=[REDIRECT], client_name="SDK test client",
                                                     grant_types=["authorization_code", "refresh_token"],
                                                     response_types=["code"]),
        storage, redirect_handler, callback_handler)
    async with httpx2.AsyncClient(auth=provider, timeout=30) as http, \
            streamable_http_client(warden.gateway + "/mcp", http_client=http) as streams, \
            ClientSession(streams[0], streams[1]) as session:
        await session.initialize()
        result = await session.call_tool("plain__credentials", {})
    assert storage.tokens is not None and storage.tokens.access_token.startswith("wdo_at_")
    assert result.structured_content is not None
    # Warden's token authenticates the client to Warden only; the upstream never sees it.
    assert result.structured_content["authorization"] is None
    assert storage.tokens.access_token not in warden.log_path.read_text(errors="replace")


def register(warden: WardenProcess, **extra: Any) -> dict[str, Any]:
    answer = httpx.post(warden.console + "/oauth/register", json={"redirect_uris": [REDIRECT],
                                                                   "token_endpoint_auth_method": "none", **extra})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_url(warden: WardenProcess, client_id: str, challenge: str, redirect: str = REDIRECT, **extra: str
                  ) -> str:
    query = httpx.QueryParams({"response_type": "code", "client_id": client_id, "redirect_uri": redirect,
                               "state": "s1", "code_challenge": challenge, "code_challenge_method": "S256",
                               "resource": warden.gateway + "/mcp", **extra})
    return f"{warden.console}/oauth/authorize?{query}"


def code_for(warden: WardenProcess, client_id: str, challenge: str) -> str:
    landed = consent(warden, authorize_url(warden, client_id, challenge))
    return parse_qs(urlsplit(landed).query)["code"][0]


def token(warden: WardenProcess, **form: str) -> httpx.Response:
    return httpx.post(warden.console + "/oauth/token", data=form)


def test_metadata_and_the_401_lead_clients_to_the_authorization_server(warden: WardenProcess) -> None:
    refused = httpx.post(warden.gateway + "/mcp", json={})
    assert refused.status_code == 401
    challenge = refused.headers["www-authenticate"]
    assert "resource_metadata=" in challenge
    metadata_url = challenge.split('resource_metadata="', 1)[1].split('"', 1)[0]
    resource = httpx.get(metadata_url).json()
    assert resource["resource"] == warden.gateway + "/mcp"
    server = httpx.get(resource["authorization_servers"][0] + "/.well-known/oauth-authorization-server").json()
    assert server["issuer"] == warden.console and server["code_challenge_methods_supported"] == ["S256"]


def test_a_code_is_bound_to_its_verifier_redirect_and_client_and_used_once(warden: WardenProcess) -> None:
    client = register(warden)
    verifier, challenge = pkce()
    code = code_for(warden, client["client_id"], challenge)
    wrong_verifier = token(warden, grant_type="authorization_code", code=code, redirect_uri=REDIRECT,
                           client_id=client["client_id"], code_verifier=pkce()[0])
    assert wrong_verifier.status_code == 400 and wrong_verifier.json()["error"] == "invalid_grant"

    code = code_for(warden, client["client_id"], challenge)
    other_redirect = token(warden, grant_type="authorization_code", code=code, client_id=client["client_id"],
                           redirect_uri="http://127.0.0.1:9/elsewhere", code_verifier=verifier)
    assert other_redirect.status_code == 400

    code = code_for(warden, client["client_id"], challenge)
    other_client = register(warden)
    stolen = token(warden, grant_type="authorization_code", code=code, redirect_uri=REDIRECT,
                   client_id=other_client["client_id"], code_verifier=verifier)
    assert stolen.status_code == 400

    code = code_for(warden, client["client_id"], challenge)
    first = token(warden, grant_type="authorization_code", code=code, redirect_uri=REDIRECT,
                  client_id=client["client_id"], code_verifier=verifier)
    assert first.status_code == 200, first.text
    access = first.json()["access_token"]
    assert httpx.post(warden.gateway + "/mcp", headers={"authorization": f"Bearer {access}"}, json={}
                      ).status_code != 401
    replay = token(warden, grant_type="authorization_code", code=code, redirect_uri=REDIRECT,
                   client_id=client["client_id"], code_verifier=verifier)
    assert replay.status_code == 400
    # A replayed code revokes what it had produced.
    assert httpx.post(warden.gateway + "/mcp", headers={"authorization": f"Bearer {access}"}, json={}
                      ).status_code == 401


def test_refresh_tokens_rotate_and_a_reused_one_revokes_the_authorization(warden: WardenProcess) -> None:
    client = register(warden)
    verifier, challenge = pkce()
    issued = token(warden, grant_type="authorization_code", code=code_for(warden, client["client_id"], challenge),
                   redirect_uri=REDIRECT, client_id=client["client_id"], code_verifier=verifier).json()
    renewed = token(warden, grant_type="refresh_token", refresh_token=issued["refresh_token"],
                    client_id=client["client_id"])
    assert renewed.status_code == 200 and renewed.json()["refresh_token"] != issued["refresh_token"]
    reused = token(warden, grant_type="refresh_token", refresh_token=issued["refresh_token"],
                   client_id=client["client_id"])
    assert reused.status_code == 400
    latest = renewed.json()["access_token"]
    assert httpx.post(warden.gateway + "/mcp", headers={"authorization": f"Bearer {latest}"}, json={}
                      ).status_code == 401


def test_unregistered_redirects_are_never_followed(warden: WardenProcess) -> None:
    client = register(warden)
    _, challenge = pkce()
    with signed_in(warden) as browser:
        page = browser.get(authorize_url(warden, client["client_id"], challenge,
                                         redirect="https://attacker.example/cb"))
        assert page.status_code == 400 and "redirect_uri" in page.text
        unknown = browser.get(authorize_url(warden, "wdc_unknown", challenge))
        assert unknown.status_code == 400
        no_pkce = browser.get(authorize_url(warden, client["client_id"], "", code_challenge_method="plain"),
                              follow_redirects=False)
        assert no_pkce.status_code == 303 and "error=invalid_request" in no_pkce.headers["location"]
        other_resource = browser.get(authorize_url(warden, client["client_id"], challenge,
                                                   resource="https://elsewhere.example/mcp"),
                                     follow_redirects=False)
        assert "error=invalid_target" in other_resource.headers["location"]
    bad_redirect = httpx.post(warden.console + "/oauth/register", json={"redirect_uris": ["http://evil.example/cb"]})
    assert bad_redirect.status_code == 400 and bad_redirect.json()["error"] == "invalid_redirect_uri"
    nul_name = httpx.post(warden.console + "/oauth/register", headers={"content-type": "application/json"},
                          content=b'{"redirect_uris": ["http://127.0.0.1:9/cb"], "client_name": "a\\u0000b"}')
    assert nul_name.status_code == 400 and nul_name.json() == {
        "error": "invalid_client_metadata", "error_description": "client_name holds NUL (\\u0000)"}


def test_signing_in_first_comes_back_to_the_consent_page(warden: WardenProcess) -> None:
    client = register(warden)
    _, challenge = pkce()
    url = authorize_url(warden, client["client_id"], challenge)
    anonymous = httpx.get(url, follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login?next=%2Foauth%2F")


def test_a_declined_request_sends_access_denied(warden: WardenProcess) -> None:
    client = register(warden)
    _, challenge = pkce()
    landed = consent(warden, authorize_url(warden, client["client_id"], challenge), allow=False)
    assert landed.startswith(REDIRECT) and "error=access_denied" in landed and "state=s1" in landed
