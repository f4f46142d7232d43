"""First-run setup, sign-in, sign-out and "who am I"."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from broker.edge.credentials import client_ip
from broker.kernel.clock import Clock
from broker.kernel.identity.service import Identity
from broker.kernel.identity.sessions import NewSession
from console.endpoints import CSRF_COOKIE, SESSION_COOKIE, ApiRoute, Call
from console.schemas import LoginBody, SetupBody
from console.views import user_view


@dataclass(frozen=True, slots=True)
class CookiePolicy:
    """``auto`` marks cookies Secure when the console is reached over TLS."""

    secure: str

    def is_secure(self, request: Request) -> bool:
        return self.secure == "always" or (self.secure == "auto" and request.url.scheme == "https")


def set_session_cookies(response: Response, session: NewSession, clock: Clock, secure: bool) -> None:
    max_age = int(session.expires_at - clock.now())
    response.set_cookie(SESSION_COOKIE, session.token, max_age=max_age, httponly=True, samesite="strict",
                        secure=secure, path="/")
    # Readable by the console's script, which echoes it in the X-CSRF-Token header (double submit).
    response.set_cookie(CSRF_COOKIE, session.csrf_token, max_age=max_age, httponly=False, samesite="strict",
                        secure=secure, path="/")


class SessionRoutes:
    """Handlers for ``/api/setup`` and ``/api/auth/*``."""

    def __init__(self, identity: Identity, cookies: CookiePolicy, clock: Clock, sso_label: str | None = None) -> None:
        self._sso_label = sso_label
        self._identity = identity
        self._cookies = cookies
        self._clock = clock

    def routes(self) -> list[ApiRoute]:
        return [
            ApiRoute("GET", "/api/setup", self.setup_state, "Whether first-run setup is still required", "session",
                     public=True),
            ApiRoute("POST", "/api/setup", self.setup, "Create the first super admin (refused once done)",
                     "session", body=SetupBody, status=201, public=True),
            ApiRoute("GET", "/api/auth/methods", self.methods, "How one may sign in: password, and single sign-on"
                     " when an identity provider is configured", "session", public=True),
            ApiRoute("POST", "/api/auth/login", self.login, "Sign in; sets the session and CSRF cookies",
                     "session", body=LoginBody, public=True),
            ApiRoute("POST", "/api/auth/logout", self.logout, "Sign out", "session", status=204),
            ApiRoute("GET", "/api/auth/me", self.me, "The signed-in user and their permissions", "session"),
        ]

    async def setup_state(self, call: Call) -> dict[str, Any]:
        return {"required": await self._identity.setup.required()}

    async def setup(self, call: Call) -> dict[str, Any]:
        body: SetupBody = call.body
        user = await self._identity.setup.create_super_admin(body.email, body.name, body.password)
        return {"user": user_view(user)}

    async def login(self, call: Call) -> Response:
        body: LoginBody = call.body
        session = await self._identity.sessions.login(body.email, body.password, client_ip(call.request))
        call.request.state.signed_in = session.user.id  # who this (public) call turned out to be, for the trail
        response = JSONResponse({"user": user_view(session.user), "csrf_token": session.csrf_token,
                                 "expires_at": session.expires_at})
        set_session_cookies(response, session, self._clock, self._cookies.is_secure(call.request))
        return response

    async def methods(self, call: Call) -> dict[str, Any]:
        sso = {"label": self._sso_label, "login_url": "/auth/oidc/login"} if self._sso_label else None
        return {"password": True, "oidc": sso}

    async def logout(self, call: Call) -> Response:
        token = call.request.cookies.get(SESSION_COOKIE)
        if token:
            await self._identity.sessions.logout(token)
        response = Response(status_code=204)
        response.delete_cookie(SESSION_COOKIE, path="/")
        response.delete_cookie(CSRF_COOKIE, path="/")
        return response

    async def me(self, call: Call) -> dict[str, Any]:
        principal = call.principal
        assert principal is not None and principal.user is not None
        perms = principal.permissions
        return {
            "user": user_view(principal.user),
            "via": principal.via,
            "permissions": sorted(perms.global_),
            "team_permissions": {team: sorted(p) for team, p in perms.by_team.items()},
        }
