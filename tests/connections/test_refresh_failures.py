"""What a failed refresh does to a linked account: a 4xx marks it needs_authorization; a 5xx or no answer
keeps it (state error) and the next call tries again; an expired token whose renewal failed is an error to
the call, never a hang. The token endpoint is a local server whose answer each test chooses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from broker.config import WardenConfig
from broker.connections.links import LinkStore, TokenSet
from broker.connections.locks import CredentialLocks, StoreLock
from broker.connections.oauth import Client, OAuthClient, ServerMetadata
from broker.connections.pending import StorePendingAuthorizations
from broker.connections.service import (
    ClientRegistrations,
    Connections,
    ConnectionsSettings,
    NeedsAuthorization,
    UpstreamAuthUnavailable,
)
from broker.kernel.crypto import KeyRing, SecretBox
from broker.kernel.store.migrations import migrate
from broker.kernel.store.ports import Database
from broker.mcp.servers import McpServerStore, UpstreamAuth, UpstreamDefinition
from broker.mcp.user_upstreams import LinkCredential
from broker.outbound import Outbound, OutboundPolicy
from broker.storage import open_database
from tests.conftest import FakeClock, serving


class TokenEndpoint:
    def __init__(self) -> None:
        self.status = 200
        self.requests: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(dict(await request.post()))
        if self.status != 200:
            return web.json_response({"error": "invalid_grant" if self.status < 500 else "server_error"},
                                     status=self.status)
        return web.json_response({"access_token": f"access-{len(self.requests)}", "token_type": "Bearer",
                                  "expires_in": 3600, "refresh_token": f"refresh-{len(self.requests)}"})


async def challenge(request: web.Request) -> web.Response:
    origin = f"http://{request.host}"
    return web.json_response({}, status=401, headers={
        "www-authenticate": f'Bearer resource_metadata="{origin}/.well-known/oauth-protected-resource/mcp"'})


async def resource_metadata(request: web.Request) -> web.Response:
    origin = f"http://{request.host}"
    return web.json_response({"resource": f"{origin}/mcp", "authorization_servers": [origin]})


async def server_metadata(request: web.Request) -> web.Response:
    origin = f"http://{request.host}"
    return web.json_response({"issuer": origin, "authorization_endpoint": f"{origin}/authorize",
                              "token_endpoint": f"{origin}/token", "registration_endpoint": f"{origin}/register",
                              "client_id_metadata_document_supported": True})


@dataclass
class Setup:
    connections: Connections
    endpoint: TokenEndpoint
    db: Database
    servers: McpServerStore
    port: int


@pytest.fixture
async def world(config: WardenConfig, clock: FakeClock) -> AsyncIterator[Setup]:
    endpoint = TokenEndpoint()
    application = web.Application()
    application.router.add_post("/token", endpoint.handle)
    application.router.add_post("/mcp", challenge)
    application.router.add_get("/.well-known/oauth-protected-resource/mcp", resource_metadata)
    application.router.add_get("/.well-known/oauth-authorization-server", server_metadata)
    async with serving(application) as port:
        db = await open_database(config)
        try:
            yield await _setup(db, clock, endpoint, port)
        finally:
            await db.close()


async def _setup(db: Database, clock: FakeClock, endpoint: TokenEndpoint, port: int) -> Setup:
    """The connections service over ``db``, its token endpoint at ``port``, one user and one per-user server
    whose OAuth client is already known."""
    await migrate(db)
    await db.execute("INSERT INTO users (id, email, name, disabled, created_at, updated_at)"
                     " VALUES ('u1', 'a@example.com', 'a', FALSE, 0, 0)")
    box = SecretBox(KeyRing.parse(KeyRing.generate_entry(1)))
    servers = McpServerStore(db, clock, box)
    await servers.create(UpstreamDefinition("notes", "streamable_http", url="http://127.0.0.1:9/mcp",
                                            auth=UpstreamAuth(mode="oauth", ownership="per_user")))
    meta = ServerMetadata("http://127.0.0.1:9/mcp", f"http://127.0.0.1:{port}",
                          f"http://127.0.0.1:{port}/authorize", f"http://127.0.0.1:{port}/token")
    await db.execute("INSERT INTO oauth_clients (server, issuer, metadata, client_id, sealed_secret, created_at)"
                     " VALUES ('notes', ?, ?, 'client', '', 0)", meta.issuer, meta.as_json())
    oauth = OAuthClient(Outbound(OutboundPolicy.from_entries(["127.0.0.1"])), clock)
    settings = ConnectionsSettings("http://console.example")

    async def changed(server: str, user: str) -> None:
        pass

    connections = Connections(servers, LinkStore(db, box, clock), ClientRegistrations(db, box, clock, oauth,
                              settings), oauth, StorePendingAuthorizations(db, clock),
                              CredentialLocks(StoreLock(db, clock)), box, clock, settings, changed)
    return Setup(connections, endpoint, db, servers, port)


async def expiring(world: Setup, clock: FakeClock, in_seconds: float) -> Any:
    link = await world.connections.links.save("notes", "u1", "work", "oauth",
                                              TokenSet("access-0", "refresh-0", clock.now() + in_seconds), "as#a")
    definition, _ = await world.servers.get("notes")
    return link, definition


async def test_a_refresh_ahead_of_expiry_renews_the_token(world: Setup, clock: FakeClock) -> None:
    connections, endpoint = world.connections, world.endpoint
    link, definition = await expiring(world, clock, 30)
    fresh = await connections.fresh(link, definition)
    assert fresh.tokens.access_token == "access-1" and fresh.tokens.refresh_token == "refresh-1"
    assert endpoint.requests[0]["grant_type"] == "refresh_token" and endpoint.requests[0]["resource"]


async def test_a_4xx_refusal_marks_the_account_needs_authorization(world: Setup, clock: FakeClock) -> None:
    connections, endpoint = world.connections, world.endpoint
    endpoint.status = 400
    link, definition = await expiring(world, clock, 30)
    with pytest.raises(NeedsAuthorization):
        await connections.fresh(link, definition)
    stored = await connections.links.get(link.id)
    assert stored.state == "needs_authorization" and "invalid_grant" in stored.detail


async def test_a_5xx_keeps_the_account_and_the_next_call_tries_again(world: Setup, clock: FakeClock) -> None:
    connections, endpoint = world.connections, world.endpoint
    endpoint.status = 503
    link, definition = await expiring(world, clock, 30)
    kept = await connections.fresh(link, definition)  # still valid for 30 s: used as it is
    assert kept.tokens.access_token == "access-0"
    assert (await connections.links.get(link.id)).state == "error"
    endpoint.status = 200
    renewed = await connections.fresh(await connections.links.get(link.id), definition)
    assert renewed.tokens.access_token == "access-2" and renewed.state == "connected"


async def test_an_expired_token_whose_renewal_fails_is_an_error_not_a_hang(world: Setup, clock: FakeClock) -> None:
    connections, endpoint = world.connections, world.endpoint
    endpoint.status = 502
    link, definition = await expiring(world, clock, -5)
    with pytest.raises(UpstreamAuthUnavailable):
        await connections.fresh(link, definition)
    assert (await connections.links.get(link.id)).state == "error"


async def test_a_token_renewed_while_a_request_was_in_flight_is_not_renewed_again(world: Setup,
                                                                                  clock: FakeClock) -> None:
    """One request presents a token that a second request then renews; the upstream refuses the first
    request's (by then old) token: it is retried with the renewed token, not renewed a second time."""
    link, definition = await expiring(world, clock, 90)
    credential = LinkCredential(link, definition, world.connections)
    in_flight = await credential.current()  # valid for 90 s: presented as it is
    clock.advance(40)
    renewed = await credential.current()  # 50 s left: renewed ahead of expiry
    assert len(world.endpoint.requests) == 1 and renewed != in_flight

    assert await credential.rejected(in_flight) == renewed
    assert len(world.endpoint.requests) == 1
    # The renewed token refused as well: that one is renewed.
    again = await credential.rejected(renewed)
    assert again is not None and again != renewed and len(world.endpoint.requests) == 2


def test_quirks_are_settings_audience_and_no_resource() -> None:
    oauth = OAuthClient(Outbound(), FakeClock())
    meta = ServerMetadata("https://mcp.example/mcp", "https://idp.example", "https://idp.example/authorize",
                          "https://idp.example/token")
    plain = oauth.authorization(meta, Client("c"), UpstreamAuth(mode="oauth"), "https://w/cb", "s").url
    quirky = oauth.authorization(meta, Client("c"), UpstreamAuth(mode="oauth", send_resource=False,
                                                                 audience="https://api.example"),
                                 "https://w/cb", "s").url
    assert "resource=https%3A%2F%2Fmcp.example%2Fmcp" in plain and "code_challenge_method=S256" in plain
    assert "resource=" not in quirky and "audience=https%3A%2F%2Fapi.example" in quirky


async def test_a_client_id_metadata_document_is_preferred_to_registration(world: Setup, clock: FakeClock) -> None:
    db, port = world.db, world.port
    definition = UpstreamDefinition("cimd", "streamable_http", url=f"http://127.0.0.1:{port}/mcp",
                                    auth=UpstreamAuth(mode="oauth", ownership="per_user"))
    oauth = OAuthClient(Outbound(OutboundPolicy.from_entries(["127.0.0.1"])), clock)
    secure = ClientRegistrations(db, SecretBox(KeyRing.parse(KeyRing.generate_entry(1))), clock, oauth,
                                 ConnectionsSettings("https://console.example"))
    meta, client = await secure.client_for(definition)
    assert meta.resource == f"http://127.0.0.1:{port}/mcp" and meta.client_id_metadata_documents
    assert client.client_id == "https://console.example/oauth/client-metadata.json" and client.client_secret is None
    document = secure.metadata_document()
    assert document["client_id"] == client.client_id
    assert document["redirect_uris"] == ["https://console.example/oauth/callback"]


async def test_an_admin_client_is_used_as_configured_without_registration(world: Setup, clock: FakeClock) -> None:
    definition = UpstreamDefinition("static", "streamable_http", url=f"http://127.0.0.1:{world.port}/mcp",
                                    auth=UpstreamAuth(mode="oauth", ownership="per_user", client_id="admin-client"),
                                    auth_secrets={"client_secret": "admin-secret"})
    oauth = OAuthClient(Outbound(OutboundPolicy.from_entries(["127.0.0.1"])), clock)
    box = SecretBox(KeyRing.parse(KeyRing.generate_entry(1)))
    registrations = ClientRegistrations(world.db, box, clock, oauth, ConnectionsSettings("http://console.example"))
    _, client = await registrations.client_for(definition)
    assert (client.client_id, client.client_secret) == ("admin-client", "admin-secret")
    row = await world.db.fetchrow("SELECT sealed_secret FROM oauth_clients WHERE server = 'static'")
    assert row is not None and "admin-secret" not in row["sealed_secret"]
