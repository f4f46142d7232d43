"""The OAuth 2.1 client Warden is towards upstream authorization servers, as the MCP authorization spec asks.

Discovery: the upstream's protected-resource metadata (RFC 9728: the ``resource_metadata`` of its 401
``WWW-Authenticate`` challenge, else the well-known URL), then its authorization server's metadata (RFC 8414,
else OpenID discovery). Client: a Client ID Metadata Document when the authorization server supports them,
else Dynamic Client Registration (RFC 7591), else the client the admin configured. Authorization code with
PKCE S256 and the ``resource`` indicator (RFC 8707) on the authorize and token requests. authlib builds the
requests (grant URI, PKCE challenge, token bodies); every fetch goes through the outbound guard.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from broker.connections.links import TokenSet
from broker.kernel.clock import Clock
from broker.mcp.servers import UpstreamAuth
from broker.outbound import Outbound, OutboundRefused

_RESOURCE_METADATA = re.compile(r'resource_metadata="([^"]+)"')
MCP_PROTOCOL_VERSION = "2025-11-25"


class OAuthFailure(Exception):
    """An OAuth exchange failed; ``status`` is the authorization server's HTTP status (0: not reached)."""

    def __init__(self, message: str, status: int = 0, error: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error = error

    @property
    def rejected(self) -> bool:
        """The authorization server refused (4xx): retrying the same grant will not help."""
        return 400 <= self.status < 500


@dataclass(frozen=True, slots=True)
class ServerMetadata:
    """What discovery found: the resource to ask tokens for and the authorization server's endpoints."""

    resource: str
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    registration_endpoint: str | None = None
    revocation_endpoint: str | None = None
    userinfo_endpoint: str | None = None
    jwks_uri: str | None = None
    scopes_supported: tuple[str, ...] = ()
    auth_methods: tuple[str, ...] = ()
    client_id_metadata_documents: bool = False

    def as_json(self) -> str:
        return json.dumps({k: getattr(self, k) for k in self.__dataclass_fields__})

    @classmethod
    def from_json(cls, text: str) -> ServerMetadata:
        raw = json.loads(text)
        raw["scopes_supported"], raw["auth_methods"] = tuple(raw["scopes_supported"]), tuple(raw["auth_methods"])
        return cls(**raw)


@dataclass(frozen=True, slots=True)
class Client:
    client_id: str
    client_secret: str | None = None


@dataclass(frozen=True, slots=True)
class Authorization:
    """An authorization request about to be sent: the browser goes to ``url``; ``verifier`` stays with Warden."""

    url: str
    verifier: str


class OAuthClient:
    def __init__(self, outbound: Outbound, clock: Clock, timeout: float = 15.0) -> None:
        self._outbound = outbound
        self._clock = clock
        self._timeout = timeout

    async def _send(self, method: str, url: str, **options: Any) -> _Answer:
        """One request through the outbound guard; failing to reach ``url`` is an OAuthFailure naming it."""
        try:
            async with self._outbound.session(timeout=self._timeout) as http, \
                    http.request(method, url, allow_redirects=False, **options) as response:
                return _Answer(response.status, _json_object(await response.read()),
                               response.headers.get("www-authenticate", ""))
        except OutboundRefused as exc:
            raise OAuthFailure(str(exc)) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise OAuthFailure(f"{url} could not be reached: {type(exc).__name__}: {exc}") from exc

    async def _document(self, url: str) -> dict[str, Any] | None:
        answer = await self._send("GET", url, headers={"accept": "application/json",
                                                        "mcp-protocol-version": MCP_PROTOCOL_VERSION})
        return answer.body if answer.status == 200 and answer.body else None

    async def document(self, url: str) -> dict[str, Any]:
        """A JSON document the authorization server publishes (its JWKS, say)."""
        found = await self._document(url)
        if found is None:
            raise OAuthFailure(f"{url} did not answer with a JSON document")
        return found

    async def userinfo(self, meta: ServerMetadata, access_token: str) -> dict[str, Any]:
        if meta.userinfo_endpoint is None:
            return {}
        answer = await self._send("GET", meta.userinfo_endpoint, headers={"authorization": f"Bearer {access_token}"})
        return answer.body if answer.status == 200 else {}

    async def discover_issuer(self, issuer: str) -> ServerMetadata:
        """An identity provider's metadata, from its issuer (OpenID discovery or RFC 8414)."""
        return self._metadata(issuer, issuer, await self._authorization_server(issuer))

    async def discover(self, server_url: str, auth: UpstreamAuth) -> ServerMetadata:
        resource, issuer = server_url, auth.authorization_server
        prm = await self._protected_resource(server_url)
        if prm is not None:
            resource = str(prm.get("resource") or server_url)
            servers = prm.get("authorization_servers") or []
            issuer = issuer or (str(servers[0]) if servers else None)
        if issuer is None:  # the 2025-03-26 revision's fallback: the server's own origin
            parts = urlsplit(server_url)
            issuer = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
        return self._metadata(resource, issuer, await self._authorization_server(issuer))

    @staticmethod
    def _metadata(resource: str, issuer: str, meta: dict[str, Any]) -> ServerMetadata:
        try:
            return ServerMetadata(
                resource=resource, issuer=str(meta.get("issuer") or issuer), jwks_uri=meta.get("jwks_uri"),
                authorization_endpoint=str(meta["authorization_endpoint"]),
                token_endpoint=str(meta["token_endpoint"]),
                registration_endpoint=meta.get("registration_endpoint"),
                revocation_endpoint=meta.get("revocation_endpoint"), userinfo_endpoint=meta.get("userinfo_endpoint"),
                scopes_supported=tuple(meta.get("scopes_supported") or ()),
                auth_methods=tuple(meta.get("token_endpoint_auth_methods_supported") or ("client_secret_basic",)),
                client_id_metadata_documents=bool(meta.get("client_id_metadata_document_supported")))
        except KeyError as exc:
            raise OAuthFailure(f"the authorization server's metadata at {issuer} has no {exc.args[0]}") from None

    async def _protected_resource(self, server_url: str) -> dict[str, Any] | None:
        """RFC 9728 metadata: named by the server's 401 challenge, else at the well-known URLs."""
        candidates = []
        probe = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": MCP_PROTOCOL_VERSION, "capabilities": {},
            "clientInfo": {"name": "warden", "version": "probe"}}}
        challenge = (await self._send("POST", server_url, json=probe, headers={
            "accept": "application/json, text/event-stream"})).challenge
        if (named := _RESOURCE_METADATA.search(challenge)) is not None:
            candidates.append(named.group(1))
        parts = urlsplit(server_url)
        origin = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
        if parts.path.strip("/"):
            candidates.append(f"{origin}/.well-known/oauth-protected-resource{parts.path.rstrip('/')}")
        candidates.append(f"{origin}/.well-known/oauth-protected-resource")
        for url in candidates:
            document = await self._document(url)
            if document is not None:
                return document
        return None

    async def _authorization_server(self, issuer: str) -> dict[str, Any]:
        parts = urlsplit(issuer)
        origin, path = urlunsplit((parts.scheme, parts.netloc, "", "", "")), parts.path.rstrip("/")
        for url in (f"{origin}/.well-known/oauth-authorization-server{path}",
                    f"{origin}/.well-known/openid-configuration{path}",
                    f"{issuer.rstrip('/')}/.well-known/openid-configuration"):
            document = await self._document(url)
            if document is not None:
                return document
        raise OAuthFailure(f"no authorization server metadata found for {issuer}")

    async def register(self, meta: ServerMetadata, redirect_uri: str, scopes: tuple[str, ...]) -> Client:
        """Dynamic Client Registration: a confidential client when the server supports client secrets."""
        if meta.registration_endpoint is None:
            raise OAuthFailure("the authorization server offers no dynamic client registration; configure"
                               " auth.client_id for this server")
        method = "client_secret_basic" if "client_secret_basic" in meta.auth_methods else "none"
        request: dict[str, Any] = {
            "client_name": "Warden", "redirect_uris": [redirect_uri],
            "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
            "token_endpoint_auth_method": method}
        if scopes:
            request["scope"] = " ".join(scopes)
        answer = await self._send("POST", meta.registration_endpoint, json=request)
        if answer.status not in (200, 201) or "client_id" not in answer.body:
            raise _failure("client registration", answer)
        return Client(str(answer.body["client_id"]), answer.body.get("client_secret"))

    def authorization(self, meta: ServerMetadata, client: Client, auth: UpstreamAuth, redirect_uri: str,
                      state: str, nonce: str | None = None) -> Authorization:
        verifier = generate_token(64)
        extra: dict[str, str] = {"code_challenge": create_s256_code_challenge(verifier),
                                 "code_challenge_method": "S256", **self._resource(meta, auth)}
        if nonce is not None:
            extra["nonce"] = nonce
        scope = " ".join(auth.scopes) or None
        url = prepare_grant_uri(meta.authorization_endpoint, client.client_id, "code", redirect_uri, scope, state,
                                **extra)
        return Authorization(url, verifier)

    async def exchange(self, meta: ServerMetadata, client: Client, auth: UpstreamAuth, code: str,
                       redirect_uri: str, verifier: str) -> tuple[TokenSet, dict[str, Any]]:
        body = prepare_token_request("authorization_code", code=code, redirect_uri=redirect_uri,
                                     code_verifier=verifier, **self._resource(meta, auth))
        return await self._token(meta, client, body)

    async def refresh(self, meta: ServerMetadata, client: Client, auth: UpstreamAuth, tokens: TokenSet) -> TokenSet:
        assert tokens.refresh_token is not None
        body = prepare_token_request("refresh_token", refresh_token=tokens.refresh_token, **self._resource(meta, auth))
        renewed, _ = await self._token(meta, client, body)
        # A server that does not rotate refresh tokens keeps the old one valid.
        return renewed if renewed.refresh_token else TokenSet(renewed.access_token, tokens.refresh_token,
                                                              renewed.expires_at, renewed.scope)

    async def revoke(self, meta: ServerMetadata, client: Client, token: str) -> None:
        """Best effort (RFC 7009): the link is gone from Warden whatever the server answers."""
        if meta.revocation_endpoint is not None:
            await self._send("POST", meta.revocation_endpoint, data={"token": token}, **_client_auth(client))

    async def subject(self, meta: ServerMetadata, tokens: TokenSet, extra: dict[str, Any]) -> str:
        """Who the upstream knows the user as: the access token's JWT claims, else the ID token's, else
        userinfo, else only the issuer."""
        for token in (tokens.access_token, extra.get("id_token")):
            claims = _jwt_claims(token) if isinstance(token, str) else None
            if claims and (claims.get("email") or claims.get("sub")):
                return f"{claims.get('iss') or meta.issuer}#{claims.get('email') or claims['sub']}"
        if meta.userinfo_endpoint is not None:
            try:
                answer = await self._send("GET", meta.userinfo_endpoint,
                                          headers={"authorization": f"Bearer {tokens.access_token}"})
            except OAuthFailure:
                return meta.issuer
            if answer.status == 200 and (answer.body.get("email") or answer.body.get("sub")):
                return f"{meta.issuer}#{answer.body.get('email') or answer.body['sub']}"
        return meta.issuer

    @staticmethod
    def _resource(meta: ServerMetadata, auth: UpstreamAuth) -> dict[str, str]:
        extra = {"resource": meta.resource} if auth.send_resource else {}
        if auth.audience:
            extra["audience"] = auth.audience
        return extra

    async def _token(self, meta: ServerMetadata, client: Client, body: str) -> tuple[TokenSet, dict[str, Any]]:
        headers = {"content-type": "application/x-www-form-urlencoded", "accept": "application/json"}
        if client.client_secret is None:  # a public client names itself in the body
            body += "&" + urlencode({"client_id": client.client_id})
        sent = await self._send("POST", meta.token_endpoint, data=body, headers=headers, **_client_auth(client))
        answer = sent.body
        if sent.status != 200 or "access_token" not in answer:
            raise _failure("token request", sent)
        expires_in = answer.get("expires_in")
        expires_at = self._clock.now() + float(expires_in) if expires_in is not None else None
        return TokenSet(str(answer["access_token"]), answer.get("refresh_token"), expires_at,
                        answer.get("scope")), answer


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: dict[str, Any]
    challenge: str  # the WWW-Authenticate header


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _client_auth(client: Client) -> dict[str, Any]:
    if client.client_secret is None:
        return {}
    return {"auth": aiohttp.BasicAuth(client.client_id, client.client_secret)}


def _failure(what: str, answer: _Answer) -> OAuthFailure:
    error = answer.body.get("error")
    description = answer.body.get("error_description") or ""
    shown = f"{error}: {description}" if error else f"HTTP {answer.status}"
    return OAuthFailure(f"{what} refused ({shown})", answer.status, str(error) if error else None)


def _jwt_claims(token: str) -> dict[str, Any] | None:
    """The unverified payload of a JWT (used only to name the account, never to trust it)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    return claims if isinstance(claims, dict) else None
