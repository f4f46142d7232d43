"""Console single sign-on with an OpenID Connect identity provider.

Authorization code with PKCE and a nonce (authlib builds the requests); the ID token is verified (signature
against the provider's JWKS, issuer, audience, expiry, nonce) with joserfc, authlib's JOSE successor. A user
is found by the provider's subject once linked, else by the verified email (and linked), else created when
``create_users`` is on. Group claims may grant roles and team memberships: what sign-in granted is tracked,
so a group that disappears takes its grant away at the next sign-in, while grants an admin made by hand are
left alone.
"""
from __future__ import annotations

import base64
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from broker.connections.oauth import Client, OAuthClient, OAuthFailure, ServerMetadata
from broker.connections.pending import PendingAuthorizations
from broker.kernel.clock import Clock
from broker.kernel.crypto import SecretBox, new_token, sha256_hex
from broker.kernel.errors import Conflict, NotFound, WardenError
from broker.kernel.identity.models import User
from broker.kernel.identity.service import Identity
from broker.kernel.store.ports import Database
from broker.mcp.servers import UpstreamAuth

_CONTEXT = b"oidc_state:"
# Asymmetric signatures only: an HMAC-signed ID token would be keyed with the client secret.
_SIGNATURES = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
_NO_RESOURCE = UpstreamAuth(send_resource=False)


class SignInRefused(WardenError):
    status = 403
    code = "sign_in_refused"


@dataclass(frozen=True, slots=True)
class OidcSettings:
    issuer: str
    client_id: str
    client_secret: str | None
    redirect_uri: str
    scopes: tuple[str, ...] = ("openid", "email", "profile")
    email_claim: str = "email"
    create_users: bool = False
    groups_claim: str | None = None
    group_roles: dict[str, str] = field(default_factory=dict)  # group -> role name
    group_teams: dict[str, str] = field(default_factory=dict)  # group -> team name


class OidcSignIn:
    def __init__(self, settings: OidcSettings, oauth: OAuthClient, pending: PendingAuthorizations, box: SecretBox,
                 clock: Clock, identity: Identity, db: Database) -> None:
        self.settings = settings
        self._oauth = oauth
        self._pending = pending
        self._box = box
        self._clock = clock
        self._identity = identity
        self._db = db
        self._meta: ServerMetadata | None = None
        self._client = Client(settings.client_id, settings.client_secret)

    async def _metadata(self) -> ServerMetadata:
        if self._meta is None:
            try:
                self._meta = await self._oauth.discover_issuer(self.settings.issuer)
            except OAuthFailure as exc:
                raise SignInRefused(f"the identity provider cannot be reached: {exc}") from exc
        return self._meta

    async def begin(self) -> tuple[str, str]:
        """The provider URL to send the browser to, and the binding to set as its cookie."""
        meta = await self._metadata()
        state, nonce, binding = new_token(), new_token(), new_token()
        authorization = self._oauth.authorization(meta, self._client, UpstreamAuth(
            scopes=self.settings.scopes, send_resource=False), self.settings.redirect_uri, state, nonce=nonce)
        payload = json.dumps({"binding": sha256_hex(binding), "nonce": nonce, "verifier": authorization.verifier})
        sealed = self._box.seal(payload.encode(), _CONTEXT + sha256_hex(state).encode())
        await self._pending.put("sso:" + state, base64.b64encode(sealed).decode())
        return authorization.url, binding

    async def complete(self, state: str, binding: str | None, code: str | None, error: str | None) -> User:
        stored = await self._pending.take("sso:" + state) if state else None
        if stored is None:
            raise SignInRefused("unknown, already used or expired sign-in; start again")
        pending = json.loads(self._box.open(base64.b64decode(stored), _CONTEXT + sha256_hex(state).encode()))
        if binding is None or sha256_hex(binding) != pending["binding"]:
            raise SignInRefused("this sign-in was started in another browser")
        if error or not code:
            raise SignInRefused(f"the identity provider did not sign you in ({error or 'no code'})")
        meta = await self._metadata()
        try:
            tokens, extra = await self._oauth.exchange(meta, self._client, _NO_RESOURCE, code,
                                                       self.settings.redirect_uri, pending["verifier"])
        except OAuthFailure as exc:
            raise SignInRefused(f"the sign-in code could not be exchanged: {exc}") from exc
        claims = await self._verified_claims(meta, str(extra.get("id_token") or ""), pending["nonce"])
        if self.settings.email_claim not in claims and meta.userinfo_endpoint:
            claims = {**await self._oauth.userinfo(meta, tokens.access_token), **claims}
        user = await self._user_for(meta.issuer, claims)
        await self._sync_groups(meta.issuer, user, claims)
        return user

    async def _verified_claims(self, meta: ServerMetadata, id_token: str, nonce: str) -> dict[str, Any]:
        if not id_token:
            raise SignInRefused("the identity provider sent no ID token")
        if meta.jwks_uri is None:
            raise SignInRefused("the identity provider publishes no signing keys (jwks_uri)")
        try:
            keys = KeySet.import_key_set(await self._oauth.document(meta.jwks_uri))  # type: ignore[arg-type]
            token = jwt.decode(id_token, keys, algorithms=_SIGNATURES)
            jwt.JWTClaimsRegistry(
                now=lambda: int(self._clock.now()), leeway=60, iss={"essential": True, "value": meta.issuer},
                aud={"essential": True, "value": self.settings.client_id},
                nonce={"essential": True, "value": nonce}, sub={"essential": True}, exp={"essential": True},
            ).validate(token.claims)
        except (JoseError, ValueError, OAuthFailure) as exc:
            raise SignInRefused(f"the ID token is not valid: {exc}") from exc
        return dict(token.claims)

    async def _user_for(self, issuer: str, claims: dict[str, Any]) -> User:
        subject = str(claims["sub"])
        row = await self._db.fetchrow("SELECT user_id FROM user_identities WHERE issuer = ? AND subject = ?",
                                      issuer, subject)
        if row is not None:
            try:
                user = await self._identity.users.get(row["user_id"])
            except NotFound:
                raise SignInRefused("the Warden user this sign-in belonged to was deleted") from None
        else:
            user = await self._first_sign_in(issuer, subject, claims)
        if user.disabled:
            raise SignInRefused("this Warden account is disabled")
        return user

    async def _first_sign_in(self, issuer: str, subject: str, claims: dict[str, Any]) -> User:
        email = claims.get(self.settings.email_claim)
        if not isinstance(email, str) or "@" not in email:
            raise SignInRefused(f"the identity provider sent no email ({self.settings.email_claim!r} claim)")
        if claims.get("email_verified") is False:
            raise SignInRefused("the identity provider says this email is not verified")
        found = await self._identity.users.find_by_email(email)
        if found is not None:
            user = found[0]
        elif self.settings.create_users:
            user = await self._identity.users.create(email, str(claims.get("name") or email.split("@")[0]))
        else:
            raise SignInRefused(f"no Warden user has the email {email}; ask an admin to add you")
        await self._db.execute("INSERT INTO user_identities (issuer, subject, user_id, granted, created_at)"
                               " VALUES (?, ?, ?, '{}', ?)", issuer, subject, user.id, self._clock.now())
        return user

    async def _sync_groups(self, issuer: str, user: User, claims: dict[str, Any]) -> None:
        if self.settings.groups_claim is None:
            return
        raw = claims.get(self.settings.groups_claim) or []
        groups = {str(g) for g in raw} if isinstance(raw, list) else {str(raw)}
        row = await self._db.fetchrow("SELECT granted FROM user_identities WHERE issuer = ? AND subject = ?",
                                      issuer, str(claims["sub"]))
        granted: dict[str, Any] = json.loads(row["granted"]) if row else {}
        roles: dict[str, str] = dict(granted.get("roles", {}))  # role id -> assignment id
        teams: list[str] = list(granted.get("teams", []))
        wanted_roles = {await self._role_id(name) for g, name in self.settings.group_roles.items() if g in groups}
        wanted_teams = {await self._team_id(name) for g, name in self.settings.group_teams.items() if g in groups}
        for role_id in wanted_roles - set(roles):
            with contextlib.suppress(Conflict):  # granted by hand: not sign-in's to take away
                roles[role_id] = (await self._identity.roles.assign(user.id, role_id)).id
        for role_id in set(roles) - wanted_roles:
            with contextlib.suppress(NotFound):  # already removed by an admin
                await self._identity.roles.unassign(roles.pop(role_id))
        for team_id in wanted_teams - set(teams):
            if not await self._identity.teams.is_member(team_id, user.id):
                await self._identity.add_team_member(team_id, user.id)
                teams.append(team_id)
        for team_id in set(teams) - wanted_teams:
            await self._identity.remove_team_member(team_id, user.id)
            teams.remove(team_id)
        await self._db.execute("UPDATE user_identities SET granted = ? WHERE issuer = ? AND subject = ?",
                               json.dumps({"roles": roles, "teams": teams}), issuer, str(claims["sub"]))

    async def _role_id(self, name: str) -> str:
        role = await self._identity.roles.find_by_name(name)
        if role is None:
            raise SignInRefused(f"security.oidc.group_roles names a role that does not exist: {name!r}")
        return role.id

    async def _team_id(self, name: str) -> str:
        team = await self._identity.teams.find_by_name(name)
        if team is None:
            raise SignInRefused(f"security.oidc.group_teams names a team that does not exist: {name!r}")
        return team.id
