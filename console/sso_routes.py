"""Console sign-in with the configured OpenID Connect provider: ``/auth/oidc/login`` and its callback."""

from __future__ import annotations

import html

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from broker.edge.credentials import client_ip
from broker.kernel.clock import Clock
from broker.kernel.errors import WardenError
from broker.kernel.identity.service import Identity
from broker.sso import OidcSignIn
from console.notice import NO_STORE, notice_page
from console.session_routes import CookiePolicy, set_session_cookies

BINDING_COOKIE = "warden_sso"
CALLBACK = "/auth/oidc/callback"


class SsoRoutes:
    def __init__(self, sign_in: OidcSignIn, identity: Identity, cookies: CookiePolicy, clock: Clock) -> None:
        self._sign_in = sign_in
        self._identity = identity
        self._cookies = cookies
        self._clock = clock

    async def login(self, request: Request) -> Response:
        try:
            url, binding = await self._sign_in.begin()
        except WardenError as exc:
            return _failed(exc)
        response = RedirectResponse(url, 303, headers=NO_STORE)
        # Lax: it must come back on the provider's redirect, a cross-site navigation.
        response.set_cookie(BINDING_COOKIE, binding, max_age=600, httponly=True, samesite="lax",
                            secure=self._cookies.is_secure(request), path=CALLBACK)
        return response

    async def callback(self, request: Request) -> Response:
        query = request.query_params
        try:
            user = await self._sign_in.complete(query.get("state", ""), request.cookies.get(BINDING_COOKIE),
                                                query.get("code"), query.get("error"))
            session = await self._identity.sessions.open_for(user, client_ip(request))
        except WardenError as exc:
            response = _failed(exc)
        else:
            # A page that moves on by its own navigation: the session cookie is SameSite=Strict, and a redirect
            # would still belong to the provider's cross-site navigation.
            response = notice_page("Signed in", f'<p id="message">Signed in as {html.escape(user.email)}.</p>'
                                   '<p><a href="/">Continue</a></p>', refresh="/")
            set_session_cookies(response, session, self._clock, self._cookies.is_secure(request))
        response.delete_cookie(BINDING_COOKIE, path=CALLBACK)
        return response


def _failed(exc: WardenError) -> Response:
    return notice_page("Sign-in failed", f'<p id="message">{html.escape(exc.message)}</p>'
                       '<p><a href="/login">Back to sign-in</a></p>', exc.status)
