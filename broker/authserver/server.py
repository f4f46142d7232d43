"""Warden's ``/mcp`` as an OAuth-protected resource, with Warden as its authorization server.

MCP clients that support the MCP authorization spec (Claude Desktop and Code, the official SDKs) connect by
browser login instead of a pasted key: they find the protected-resource metadata (RFC 9728) from the 401 of
``/mcp``, then this server's metadata (RFC 8414), register by DCR (RFC 7591), and send the user to
``/oauth/authorize``, where a signed-in console user consents. Codes need PKCE S256; tokens are bound to the
resource (RFC 8707: ``/mcp`` of this gateway) and short-lived, refresh tokens rotate, and reusing a spent code
or refresh token revokes everything of that authorization. Codes and tokens are stored as keyed hashes only.
These tokens authenticate callers to Warden; they are never sent to any upstream.
"""

from __future__ import annotations

import base64
import hmac
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from authlib.oauth2.rfc7636 import create_s256_code_challenge

from broker.connections.pending import PendingAuthorizations
from broker.kernel.clock import Clock
from broker.kernel.crypto import KeyHasher, new_token
from broker.kernel.errors import AuthenticationFailed
from broker.kernel.identity.models import Principal
from broker.kernel.identity.service import Identity
from broker.kernel.store.ports import Database, Row

ACCESS_PREFIX = "wdo_at_"
REFRESH_PREFIX = "wdo_rt_"
CODE_TTL = 60.0
SCOPE = "mcp"
AUTH_METHODS = ("none", "client_secret_post", "client_secret_basic")


class OAuthError(Exception):
    """An RFC 6749 error answer: ``error`` code, description, HTTP status."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


class InvalidAuthorizationRequest(Exception):
    """An authorization request that cannot be answered by redirecting (unknown client, unregistered
    redirect URI): the user is shown the problem instead, so an attacker's URI never receives anything."""


@dataclass(frozen=True, slots=True)
class AuthorizationServerSettings:
    issuer: str  # the console's public URL: authorization happens where users sign in
    resource: str  # the gateway's /mcp URL, the audience of every token
    access_ttl_seconds: float = 900.0
    refresh_ttl_seconds: float = 30 * 86400.0


@dataclass(frozen=True, slots=True)
class PendingRequest:
    """An authorization request waiting for the signed-in user's consent."""

    id: str
    client_id: str
    client_name: str
    redirect_uri: str
    state: str | None
    code_challenge: str
    scope: str


class McpAuthorizationServer:
    def __init__(self, db: Database, hasher: KeyHasher, clock: Clock, identity: Identity,
                 pending: PendingAuthorizations, settings: AuthorizationServerSettings) -> None:
        self._db = db
        self._hasher = hasher
        self._clock = clock
        self._identity = identity
        self._pending = pending
        self.settings = settings

    def metadata(self) -> dict[str, Any]:
        issuer = self.settings.issuer
        return {
            "issuer": issuer, "authorization_endpoint": f"{issuer}/oauth/authorize",
            "token_endpoint": f"{issuer}/oauth/token", "registration_endpoint": f"{issuer}/oauth/register",
            "revocation_endpoint": f"{issuer}/oauth/revoke", "scopes_supported": [SCOPE],
            "response_types_supported": ["code"], "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"], "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
            "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
        }

    def resource_metadata(self) -> dict[str, Any]:
        return {"resource": self.settings.resource, "authorization_servers": [self.settings.issuer],
                "scopes_supported": [SCOPE], "bearer_methods_supported": ["header"],
                "resource_name": "Warden MCP gateway"}

    async def register(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """RFC 7591: redirect URIs must be https, or http on the loopback interface (native clients)."""
        uris = request.get("redirect_uris")
        if not isinstance(uris, list) or not uris or not all(isinstance(u, str) and _acceptable_redirect(u)
                                                              for u in uris):
            raise OAuthError("invalid_redirect_uri", "redirect_uris must be https URLs, or http on loopback")
        method = request.get("token_endpoint_auth_method") or "client_secret_basic"
        if method not in AUTH_METHODS:
            raise OAuthError("invalid_client_metadata", f"token_endpoint_auth_method must be one of {AUTH_METHODS}")
        for grant in request.get("grant_types") or ["authorization_code"]:
            if grant not in ("authorization_code", "refresh_token"):
                raise OAuthError("invalid_client_metadata", f"unsupported grant type {grant!r}")
        client_id = "wdc_" + uuid.uuid4().hex
        secret = new_token() if method != "none" else None
        name = str(request.get("client_name") or "MCP client")[:200]
        now = self._clock.now()
        await self._db.execute(
            "INSERT INTO mcp_oauth_clients (client_id, client_name, redirect_uris, auth_method, secret_hash,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?)", client_id, name, json.dumps(uris), method,
            self._hasher.digest(secret) if secret else None, now)
        answer: dict[str, Any] = {
            "client_id": client_id, "client_name": name, "redirect_uris": uris, "token_endpoint_auth_method": method,
            "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
            "client_id_issued_at": int(now), "scope": SCOPE}
        if secret:
            answer.update(client_secret=secret, client_secret_expires_at=0)
        return answer

    async def begin(self, params: Mapping[str, str]) -> PendingRequest:
        """Check an authorization request; it waits for consent under a single-use id."""
        client = await self._client(params.get("client_id", ""))
        redirect_uri = params.get("redirect_uri", "")
        if client is None:
            raise InvalidAuthorizationRequest("unknown client_id")
        if redirect_uri not in json.loads(client["redirect_uris"]):
            raise InvalidAuthorizationRequest("redirect_uri is not one this client registered")
        state = params.get("state")

        def refuse(error: str, description: str) -> OAuthError:
            return OAuthError(error, description, 302)

        if params.get("response_type") != "code":
            raise refuse("unsupported_response_type", "only response_type=code")
        if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
            raise refuse("invalid_request", "PKCE with code_challenge_method=S256 is required")
        resource = params.get("resource")
        if resource is not None and resource.rstrip("/") != self.settings.resource:
            raise refuse("invalid_target", f"this server issues tokens for {self.settings.resource} only")
        scope = params.get("scope") or SCOPE
        if any(s not in (SCOPE, "offline_access") for s in scope.split()):
            raise refuse("invalid_scope", f"supported scopes: {SCOPE}")
        request_id = new_token()
        pending = PendingRequest(request_id, client["client_id"], client["client_name"], redirect_uri, state,
                                 params["code_challenge"], SCOPE)
        await self._pending.put("request:" + request_id, json.dumps({
            "client_id": pending.client_id, "client_name": pending.client_name, "redirect_uri": redirect_uri,
            "state": state, "code_challenge": pending.code_challenge, "scope": pending.scope}))
        return pending

    def error_redirect(self, redirect_uri: str, state: str | None, error: OAuthError) -> str:
        return _with_query(redirect_uri, {"error": error.error, "error_description": error.description,
                                          "state": state, "iss": self.settings.issuer})

    async def decide(self, user_id: str, request_id: str, allow: bool) -> str:
        """The user's answer to a pending request: the redirect back to the client, with a code or a refusal."""
        stored = await self._pending.take("request:" + request_id)
        if stored is None:
            raise OAuthError("invalid_request", "unknown or expired authorization request; start again")
        request = json.loads(stored)
        if not allow:
            return self.error_redirect(request["redirect_uri"], request["state"],
                                       OAuthError("access_denied", "the user declined"))
        code = new_token()
        await self._grant(code, "code", request["client_id"], user_id, request["scope"], uuid.uuid4().hex,
                          CODE_TTL, {"redirect_uri": request["redirect_uri"],
                                     "code_challenge": request["code_challenge"]})
        return _with_query(request["redirect_uri"], {"code": code, "state": request["state"],
                                                     "iss": self.settings.issuer})

    async def token(self, form: Mapping[str, str], authorization: str | None) -> dict[str, Any]:
        client = await self._authenticated_client(form, authorization)
        grant_type = form.get("grant_type")
        resource = form.get("resource")
        if resource is not None and resource.rstrip("/") != self.settings.resource:
            raise OAuthError("invalid_target", f"this server issues tokens for {self.settings.resource} only")
        if grant_type == "authorization_code":
            code = await self._spend(form.get("code", ""), "code", client["client_id"])
            detail = json.loads(code["detail"])
            if form.get("redirect_uri") != detail["redirect_uri"]:
                raise OAuthError("invalid_grant", "redirect_uri differs from the authorization request's")
            verifier = form.get("code_verifier", "")
            if not verifier or not hmac.compare_digest(create_s256_code_challenge(verifier),
                                                       detail["code_challenge"]):
                raise OAuthError("invalid_grant", "the PKCE code_verifier does not match")
            return await self._issue(client["client_id"], code["user_id"], code["scope"], code["family"])
        if grant_type == "refresh_token":
            refresh = await self._spend(form.get("refresh_token", ""), "refresh", client["client_id"])
            return await self._issue(client["client_id"], refresh["user_id"], refresh["scope"], refresh["family"])
        raise OAuthError("unsupported_grant_type", "authorization_code or refresh_token")

    async def revoke(self, form: Mapping[str, str], authorization: str | None) -> None:
        """RFC 7009: revoking either token of an authorization ends all of it; unknown tokens are fine."""
        client = await self._authenticated_client(form, authorization)
        row = await self._db.fetchrow("SELECT family, client_id FROM mcp_oauth_grants WHERE token_hash = ?",
                                      self._hasher.digest(form.get("token", "")))
        if row is not None and row["client_id"] == client["client_id"]:
            await self._revoke_family(row["family"])

    async def principal_for(self, token: str) -> Principal:
        """The user an access token acts for, when it is live and for this resource."""
        row = await self._db.fetchrow("SELECT * FROM mcp_oauth_grants WHERE token_hash = ? AND kind = 'access'",
                                      self._hasher.digest(token))
        if row is None or row["revoked_at"] is not None or float(row["expires_at"]) <= self._clock.now():
            raise AuthenticationFailed("unknown, expired or revoked access token")
        if row["resource"] != self.settings.resource:
            raise AuthenticationFailed("this access token is for another resource")
        return await self._identity.principal_for_user(row["user_id"])

    async def _issue(self, client_id: str, user_id: str, scope: str, family: str) -> dict[str, Any]:
        access, refresh = ACCESS_PREFIX + new_token(), REFRESH_PREFIX + new_token()
        await self._grant(access, "access", client_id, user_id, scope, family, self.settings.access_ttl_seconds)
        await self._grant(refresh, "refresh", client_id, user_id, scope, family, self.settings.refresh_ttl_seconds)
        return {"access_token": access, "token_type": "Bearer", "expires_in": int(self.settings.access_ttl_seconds),
                "refresh_token": refresh, "scope": scope}

    async def _grant(self, token: str, kind: str, client_id: str, user_id: str, scope: str, family: str,
                     ttl: float, detail: dict[str, Any] | None = None) -> None:
        now = self._clock.now()
        await self._db.execute(
            "INSERT INTO mcp_oauth_grants (token_hash, kind, client_id, user_id, resource, scope, family, detail,"
            " expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", self._hasher.digest(token), kind,
            client_id, user_id, self.settings.resource, scope, family, json.dumps(detail or {}), now + ttl, now)

    async def _spend(self, token: str, kind: str, client_id: str) -> Row:
        """Use a code or refresh token once; a second use revokes everything of its authorization."""
        now = self._clock.now()
        row = await self._db.fetchrow("SELECT * FROM mcp_oauth_grants WHERE token_hash = ? AND kind = ?",
                                      self._hasher.digest(token), kind)
        if row is None or row["client_id"] != client_id:
            raise OAuthError("invalid_grant", f"unknown {kind}, or issued to another client")
        spent = await self._db.execute(
            "UPDATE mcp_oauth_grants SET used_at = ? WHERE token_hash = ? AND used_at IS NULL AND revoked_at IS NULL",
            now, row["token_hash"])
        if not spent:
            await self._revoke_family(row["family"])
            raise OAuthError("invalid_grant", f"this {kind} was already used; its authorization is revoked")
        if float(row["expires_at"]) <= now:
            raise OAuthError("invalid_grant", f"this {kind} has expired")
        return row

    async def _revoke_family(self, family: str) -> None:
        await self._db.execute("UPDATE mcp_oauth_grants SET revoked_at = ? WHERE family = ? AND revoked_at IS NULL",
                               self._clock.now(), family)

    async def _client(self, client_id: str) -> Row | None:
        return await self._db.fetchrow("SELECT * FROM mcp_oauth_clients WHERE client_id = ?", client_id)

    async def _authenticated_client(self, form: Mapping[str, str], authorization: str | None) -> Row:
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization.lower().startswith("basic "):
            try:
                client_id, _, secret = base64.b64decode(authorization[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise OAuthError("invalid_client", "malformed basic credentials", 401) from None
        client = await self._client(client_id or "")
        if client is None:
            raise OAuthError("invalid_client", "unknown client", 401)
        if client["auth_method"] != "none" and not (secret and self._hasher.matches(secret, client["secret_hash"])):
            raise OAuthError("invalid_client", "client authentication failed", 401)
        return client


def _acceptable_redirect(uri: str) -> bool:
    parts = urlsplit(uri)
    if parts.fragment:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1"))


def _with_query(uri: str, values: dict[str, str | None]) -> str:
    extra = urlencode({k: v for k, v in values.items() if v is not None})
    return f"{uri}{'&' if urlsplit(uri).query else '?'}{extra}"
