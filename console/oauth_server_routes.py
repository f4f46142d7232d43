"""The console side of Warden's authorization server for ``/mcp``: metadata, DCR, the consent page, tokens.

The authorization endpoint is a page: a signed-in user sees which client asks to use Warden's MCP tools as
them and allows or declines (the decision is an API call carrying the session's CSRF header); someone not
signed in is sent to sign in first and comes back. Requests that cannot safely be redirected (unknown
client, unregistered redirect URI) are answered on the page, never sent anywhere.
"""

from __future__ import annotations

import html
import json
from typing import Any
from urllib.parse import quote

from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from broker.authserver.server import InvalidAuthorizationRequest, McpAuthorizationServer, OAuthError
from broker.edge.credentials import client_ip
from broker.kernel.errors import AuthenticationFailed, FieldError, InvalidInput
from broker.kernel.identity.service import Identity
from console.endpoints import SESSION_COOKIE, ApiRoute, Call, unstorable_texts
from console.notice import NO_STORE, notice_page
from console.schemas import _Body

MAX_FORM_BYTES = 64 * 1024


class Decision(_Body):
    request: str = Field(min_length=10, max_length=200, description="the pending request's id from the page")
    allow: bool


class OAuthServerRoutes:
    def __init__(self, server: McpAuthorizationServer, identity: Identity) -> None:
        self._server = server
        self._identity = identity

    def routes(self) -> list[ApiRoute]:
        return [
            ApiRoute("POST", "/api/oauth/decision", self.decision, "Allow or decline an MCP client's authorization"
                     " request shown on the consent page; returns where the browser goes next", "oauth",
                     body=Decision),
        ]

    async def decision(self, call: Call) -> dict[str, Any]:
        if call.actor.via != "session":
            raise InvalidInput("consent is given in a signed-in console session")
        try:
            redirect = await self._server.decide(call.user_id, call.body.request, call.body.allow)
        except OAuthError as exc:
            raise InvalidInput(exc.description, [FieldError("request", exc.error)]) from exc
        return {"redirect": redirect}

    async def metadata(self, request: Request) -> Response:
        return JSONResponse(self._server.metadata())

    async def register(self, request: Request) -> Response:
        try:
            body = json.loads(await _bounded(request))
            if not isinstance(body, dict):
                raise OAuthError("invalid_client_metadata", "the body must be a JSON object")
            if unstorable := unstorable_texts(body):
                raise OAuthError("invalid_client_metadata", f"{unstorable[0].field} {unstorable[0].message}")
            return JSONResponse(await self._server.register(body), 201, headers=NO_STORE)
        except ValueError:
            return _error(OAuthError("invalid_client_metadata", "the body is not valid JSON"))
        except OAuthError as exc:
            return _error(exc)

    async def authorize(self, request: Request) -> Response:
        token = request.cookies.get(SESSION_COOKIE)
        try:
            if not token:
                raise AuthenticationFailed("no session")
            principal, _ = await self._identity.principal_for_session(token, client_ip(request))
        except AuthenticationFailed:
            back = request.url.path + ("?" + request.url.query if request.url.query else "")
            return RedirectResponse("/login?next=" + quote(back, safe=""), 303, headers=NO_STORE)
        params = dict(request.query_params)
        try:
            pending = await self._server.begin(params)
        except InvalidAuthorizationRequest as exc:
            return notice_page("Authorization refused", f'<p id="problem">{html.escape(str(exc))}</p>', 400)
        except OAuthError as exc:
            return RedirectResponse(self._server.error_redirect(params["redirect_uri"], params.get("state"), exc),
                                    303, headers=NO_STORE)
        assert principal.user is not None
        body = (f"<p><strong>{html.escape(pending.client_name)}</strong> asks to use Warden's MCP tools as"
                f" <strong>{html.escape(principal.user.email)}</strong>, with your access rules, quotas and linked"
                f" accounts, until you or an admin revoke it.</p>"
                f"<p class=\"muted\">It will be sent back to {html.escape(pending.redirect_uri)}</p>"
                f"<div id=\"consent\" data-request=\"{html.escape(pending.id)}\">"
                f"<button type=\"button\" data-allow=\"true\">Allow</button> "
                f"<button type=\"button\" data-allow=\"false\" class=\"link\">Decline</button></div>"
                f"<p class=\"error\" role=\"alert\" hidden></p>")
        return notice_page("Allow access?", body, scripts=("/static/console.js", "/static/consent.js"))

    async def token(self, request: Request) -> Response:
        try:
            form = await _form(request)
            return JSONResponse(await self._server.token(form, request.headers.get("authorization")),
                                headers=NO_STORE)
        except OAuthError as exc:
            return _error(exc)

    async def revoke(self, request: Request) -> Response:
        try:
            await self._server.revoke(await _form(request), request.headers.get("authorization"))
        except OAuthError as exc:
            return _error(exc)
        return Response(status_code=200, headers=NO_STORE)


async def _bounded(request: Request) -> bytes:
    raw = await request.body()
    if len(raw) > MAX_FORM_BYTES:
        raise OAuthError("invalid_request", f"the body is larger than {MAX_FORM_BYTES} bytes")
    return raw


async def _form(request: Request) -> dict[str, str]:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "send application/x-www-form-urlencoded")
    await _bounded(request)
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _error(exc: OAuthError) -> Response:
    status = exc.status if exc.status in (400, 401) else 400
    headers = dict(NO_STORE)
    if status == 401:
        headers["www-authenticate"] = 'Basic realm="warden"'
    return JSONResponse(exc.body(), status, headers=headers)


