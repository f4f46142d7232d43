"""Linking users' accounts to upstream servers, and keeping their credentials fresh.

A user starts an authorization from the connections page (``begin``); the authorization server sends the
browser back to Warden's callback (``complete``), which must come from the same browser and user that started
it, with a state that is single use and at most ten minutes old. The browser is recognised by a binding
secret set as a cookie when the authorization starts: the console's session cookie is SameSite=Strict, so a
browser arriving from another site's redirect does not send it, while a Lax cookie scoped to the callback is
sent on that top-level navigation. Tokens are refreshed ahead of expiry
under a per-credential lock held across instances, so concurrent calls refresh once. A refresh refused with a
4xx marks the link ``needs_authorization``; a 5xx or an unreachable server keeps it (``error``) and the next
call tries again.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from broker.connections.links import Link, LinkStore, TokenSet, check_label
from broker.connections.locks import CredentialLocks
from broker.connections.oauth import Client, OAuthClient, OAuthFailure, ServerMetadata
from broker.connections.pending import PendingAuthorizations
from broker.kernel.clock import Clock
from broker.kernel.crypto import SecretBox, new_token, sha256_hex
from broker.kernel.errors import Conflict, FieldError, InvalidInput, NotFound, WardenError
from broker.kernel.identity.models import Principal
from broker.kernel.store.ports import Database
from broker.mcp.credentials import UpstreamCredential
from broker.mcp.servers import McpServerStore, UpstreamAuth, UpstreamDefinition

_PENDING_CONTEXT = b"oauth_state:"
_CLIENT_CONTEXT = b"oauth_client:"

log = logging.getLogger(__name__)


def binding_cookie(state: str) -> str:
    """The cookie that binds one authorization to the browser that started it (one per state, so several
    authorizations may be in flight in one browser)."""
    return "warden_oauth_" + sha256_hex(state)[:16]


class AuthorizationRejected(WardenError):
    """An authorization callback that cannot be accepted (unknown, used, expired or someone else's state;
    the authorization server's refusal)."""

    status = 400
    code = "authorization_rejected"


class NeedsAuthorization(Exception):
    """The link's credential can no longer be used or renewed: the user must authorize again."""


class UpstreamAuthUnavailable(WardenError):
    status = 502
    code = "upstream_auth_unavailable"


@dataclass(frozen=True, slots=True)
class ConnectionsSettings:
    console_url: str
    refresh_ahead_seconds: float = 60.0

    @property
    def callback_url(self) -> str:
        return f"{self.console_url}/oauth/callback"

    @property
    def connections_url(self) -> str:
        return f"{self.console_url}/connections"

    @property
    def client_metadata_url(self) -> str:
        return f"{self.console_url}/oauth/client-metadata.json"


class ClientRegistrations:
    """The OAuth client Warden uses at each upstream's authorization server, found once and kept."""

    def __init__(self, db: Database, box: SecretBox, clock: Clock, oauth: OAuthClient,
                 settings: ConnectionsSettings) -> None:
        self._db = db
        self._box = box
        self._clock = clock
        self._oauth = oauth
        self._settings = settings

    async def client_for(self, definition: UpstreamDefinition) -> tuple[ServerMetadata, Client]:
        row = await self._db.fetchrow("SELECT * FROM oauth_clients WHERE server = ?", definition.name)
        if row is not None:
            secret = self._box.open(base64.b64decode(row["sealed_secret"]), _CLIENT_CONTEXT + row["server"].encode()
                                    ).decode() if row["sealed_secret"] else None
            return ServerMetadata.from_json(row["metadata"]), Client(row["client_id"], secret)
        assert definition.url is not None
        try:
            meta = await self._oauth.discover(definition.url, definition.auth)
            client = await self._choose_client(definition, meta)
        except OAuthFailure as exc:
            raise UpstreamAuthUnavailable(f"{definition.name}: {exc}") from exc
        sealed = base64.b64encode(self._box.seal(client.client_secret.encode(), _CLIENT_CONTEXT
                                                 + definition.name.encode())).decode() if client.client_secret else ""
        await self._db.execute(
            "INSERT INTO oauth_clients (server, issuer, metadata, client_id, sealed_secret, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (server) DO NOTHING",
            definition.name, meta.issuer, meta.as_json(), client.client_id, sealed, self._clock.now())
        return await self.client_for(definition)

    async def _choose_client(self, definition: UpstreamDefinition, meta: ServerMetadata) -> Client:
        """Client ID Metadata Document first (nothing to register; the server fetches Warden's document,
        so only over https), Dynamic Client Registration next, the admin's client last."""
        if definition.auth.client_id:
            return Client(definition.auth.client_id, definition.auth_secrets.get("client_secret"))
        if meta.client_id_metadata_documents and self._settings.console_url.startswith("https://"):
            return Client(self._settings.client_metadata_url)
        return await self._oauth.register(meta, self._settings.callback_url, definition.auth.scopes)

    async def forget(self, server: str) -> None:
        await self._db.execute("DELETE FROM oauth_clients WHERE server = ?", server)

    async def forget_orphans(self) -> None:
        await self._db.execute("DELETE FROM oauth_clients WHERE server NOT IN (SELECT name FROM mcp_servers)")

    def metadata_document(self) -> dict[str, Any]:
        """Warden's Client ID Metadata Document, served at its own URL (the client id)."""
        return {"client_id": self._settings.client_metadata_url, "client_name": "Warden",
                "redirect_uris": [self._settings.callback_url], "grant_types": ["authorization_code",
                                                                                "refresh_token"],
                "response_types": ["code"], "token_endpoint_auth_method": "none"}


class Connections:
    def __init__(self, servers: McpServerStore, links: LinkStore, registrations: ClientRegistrations,
                 oauth: OAuthClient, pending: PendingAuthorizations, locks: CredentialLocks, box: SecretBox,
                 clock: Clock, settings: ConnectionsSettings,
                 changed: Callable[[str, str], Awaitable[None]]) -> None:
        self._servers = servers
        self.links = links
        self.registrations = registrations
        self._oauth = oauth
        self._pending = pending
        self._locks = locks
        self._box = box
        self._clock = clock
        self.settings = settings
        self._changed = changed  # (server, user id): a link was made, renewed by the user, or removed
        self.refreshes = 0

    async def authorization_server(self, server_url: str) -> ServerMetadata:
        """What an upstream's OAuth authorization server offers (discovery as a link would do it), for the
        registration wizard: raises OAuthFailure when none is found."""
        return await self._oauth.discover(server_url, UpstreamAuth(mode="oauth"))

    async def _per_user(self, server: str, mode: str | None = None) -> UpstreamDefinition:
        definition, _ = await self._servers.get(server)
        if not definition.auth.per_user or (mode is not None and definition.auth.mode != mode):
            wanted = f" with {mode} credentials" if mode else ""
            raise Conflict(f"{server!r} is not an upstream users link their own accounts to{wanted}")
        return definition

    async def begin(self, user_id: str, server: str, label: str) -> tuple[str, str, str]:
        """The authorization server URL to send the user's browser to, the name of the binding cookie to
        set in that browser, and its value."""
        check_label(label)
        definition = await self._per_user(server, "oauth")
        meta, client = await self.registrations.client_for(definition)
        state, binding = new_token(), new_token()
        authorization = self._oauth.authorization(meta, client, definition.auth, self.settings.callback_url, state)
        payload = json.dumps({"user": user_id, "binding": sha256_hex(binding), "server": server,
                              "label": label, "verifier": authorization.verifier})
        sealed = self._box.seal(payload.encode(), _PENDING_CONTEXT + sha256_hex(state).encode())
        await self._pending.put(state, base64.b64encode(sealed).decode())
        return authorization.url, binding_cookie(state), binding

    async def complete(self, state: str, binding: str | None, signed_in_user: str | None, code: str | None,
                       error: str | None) -> Link:
        """Accept the authorization server's answer in the browser, and for the user, that started it."""
        stored = await self._pending.take(state) if state else None
        if stored is None:
            raise AuthorizationRejected("unknown, already used or expired authorization state; start again from"
                                        " the connections page")
        pending = json.loads(self._box.open(base64.b64decode(stored), _PENDING_CONTEXT + sha256_hex(state).encode()))
        if binding is None or pending["binding"] != sha256_hex(binding) \
                or (signed_in_user is not None and signed_in_user != pending["user"]):
            raise AuthorizationRejected("this authorization was started by another user or in another browser")
        user_id = str(pending["user"])
        if error:
            raise AuthorizationRejected(f"the authorization server did not grant access ({error})")
        if not code:
            raise AuthorizationRejected("the callback carries no authorization code")
        definition = await self._per_user(pending["server"], "oauth")
        meta, client = await self.registrations.client_for(definition)
        try:
            tokens, extra = await self._oauth.exchange(meta, client, definition.auth, code,
                                                       self.settings.callback_url, pending["verifier"])
        except OAuthFailure as exc:
            raise AuthorizationRejected(f"the code could not be exchanged: {exc}") from exc
        subject = await self._oauth.subject(meta, tokens, extra)
        link = await self.links.save(definition.name, user_id, pending["label"], "oauth", tokens, subject)
        await self._changed(definition.name, user_id)
        return link

    async def add_token(self, user_id: str, server: str, label: str, token: str) -> Link:
        definition = await self._per_user(server, "personal_token")
        if not token.strip() or len(token) > 8192:
            raise InvalidInput("invalid token", [FieldError("token", "1 to 8192 characters")])
        link = await self.links.save(definition.name, user_id, label, "personal_token", TokenSet(token.strip()),
                                     f"{server}#{label}")
        await self._changed(server, user_id)
        return link

    async def unlink(self, user_id: str, server: str, label: str) -> None:
        """Remove the link, revoking its token at the authorization server when it has one (best effort)."""
        link = await self.links.find(server, user_id, label)
        if link is None:
            raise NotFound(f"no {server!r} account labelled {label!r} is linked")
        await self.links.delete(link)
        await self._changed(server, user_id)
        if link.kind == "oauth":
            try:
                definition, _ = await self._servers.get(server)
                meta, client = await self.registrations.client_for(definition)
                await self._oauth.revoke(meta, client, link.tokens.refresh_token or link.tokens.access_token)
            except (OAuthFailure, WardenError):
                pass

    async def server_changed(self, server: str, removed: bool) -> None:
        """An upstream was redefined (its OAuth client is found again: the URL or auth may have changed) or
        removed (its users' accounts go too)."""
        await self.registrations.forget(server)
        if removed:
            await self.links.delete_server(server)

    async def forget_removed_servers(self) -> None:
        """Accounts and OAuth clients of servers no longer defined (removed from the configuration file)."""
        await self.links.delete_orphans()
        await self.registrations.forget_orphans()

    async def make_default(self, user_id: str, server: str, label: str) -> None:
        link = await self.links.find(server, user_id, label)
        if link is None:
            raise NotFound(f"no {server!r} account labelled {label!r} is linked")
        await self.links.make_default(link)
        await self._changed(server, user_id)

    async def link_for(self, principal: Principal, server: str) -> Link | None:
        """Whose account a call runs with: the key's pinned account for the server (never another one),
        else the user's default account."""
        if principal.user is None:
            return None
        pinned = principal.key.pinned_accounts.get(server) if principal.key is not None else None
        return await self.links.find(server, principal.user.id, pinned)

    async def fresh(self, link: Link, definition: UpstreamDefinition) -> Link:
        """The link with a credential good for the next minute, refreshed first if it is not."""
        if link.state == "needs_authorization":
            raise NeedsAuthorization(link.detail)
        expires = link.tokens.expires_at
        if link.kind != "oauth" or expires is None or expires - self._clock.now() > self.settings.refresh_ahead_seconds:
            return link
        return await self._refresh(link, definition, "the token expires")

    async def rejected(self, link: Link, definition: UpstreamDefinition) -> Link | None:
        """The upstream refused ``link``'s token: a refreshed link to retry with, or None."""
        if link.kind != "oauth":
            await self.links.mark(link, "needs_authorization", "the upstream rejected the token")
            await self._changed(link.server, link.user_id)
            return None
        try:
            return await self._refresh(link, definition, "the upstream refused the token")
        except NeedsAuthorization:
            return None

    async def _refresh(self, link: Link, definition: UpstreamDefinition, cause: str) -> Link:
        async with self._locks.hold(f"link:{link.id}"):
            current = await self.links.get(link.id)
            if current.version != link.version and current.state == "connected":
                return current  # renewed meanwhile, here or on another instance
            if current.state == "needs_authorization":
                raise NeedsAuthorization(current.detail)
            if not current.tokens.refresh_token:
                await self._needs_authorization(current, "the token expired and cannot be renewed")
            meta, client = await self.registrations.client_for(definition)
            try:
                tokens = await self._oauth.refresh(meta, client, definition.auth, current.tokens)
            except OAuthFailure as exc:
                if exc.rejected:
                    await self._needs_authorization(current, f"renewal refused: {exc}")
                await self.links.mark(current, "error", f"renewal failed, will retry: {exc}")
                if (current.tokens.expires_at or 0) > self._clock.now():
                    return current  # still valid for now
                raise UpstreamAuthUnavailable(f"{definition.name}: the token expired and renewal failed: {exc}"
                                              ) from exc
            self.refreshes += 1
            log.info("renewed the token of %s account %r of user %s (version %d): %s", definition.name,
                     current.label, current.user_id, current.version, cause)
            return await self.links.refreshed(current, tokens) or await self.links.get(link.id)

    async def _needs_authorization(self, link: Link, detail: str) -> None:
        await self.links.mark(link, "needs_authorization", detail)
        await self._changed(link.server, link.user_id)
        raise NeedsAuthorization(detail)

    async def credential_for(self, principal: Principal, server: str) -> UpstreamCredential | None:
        """The ``requires_user_credential`` hook: the caller's usable account for the server, if any."""
        link = await self.link_for(principal, server)
        if link is None or link.state == "needs_authorization":
            return None
        return UpstreamCredential(link.upstream_subject)
