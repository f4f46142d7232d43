"""The connections feature on the console: a user's linked accounts on per-user upstreams.

``/api/connections`` lists every per-user upstream the caller may use with the state of their account there;
authorizing starts from a signed-in console session (the callback must come back to that same session),
personal tokens are pasted, accounts are unlinked or made default. ``/oauth/callback`` is where upstream
authorization servers send the browser back.
"""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import quote

from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from broker.connections.links import Link
from broker.connections.pending import STATE_TTL
from broker.connections.service import Connections, binding_cookie
from broker.edge.credentials import client_ip
from broker.kernel.errors import AuthenticationFailed, InvalidInput, NotFound, WardenError
from broker.kernel.identity.service import Identity
from broker.mcp.access import AccessPolicy
from broker.mcp.catalog import whole_server
from broker.mcp.pool import UpstreamPool
from broker.mcp.probe import probe
from broker.mcp.upstream import Reach
from broker.mcp.user_upstreams import LinkCredential
from broker.outbound import Outbound
from console.endpoints import SESSION_COOKIE, ApiRoute, Call
from console.notice import NO_STORE, notice_page
from console.schemas import _Body
from console.session_routes import CookiePolicy

LABEL_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"


class Authorize(_Body):
    label: str = Field("default", pattern=LABEL_PATTERN)


class PersonalToken(_Body):
    label: str = Field("default", pattern=LABEL_PATTERN)
    token: str = Field(min_length=1, max_length=8192)


class TestConnection(_Body):
    label: str | None = Field(None, pattern=LABEL_PATTERN, description="the account to test; default: yours")
    tool: str | None = Field(None, max_length=200, description="also call this tool (its upstream name)")
    arguments: dict[str, Any] = Field(default_factory=dict)


class ConnectionRoutes:
    def __init__(self, identity: Identity, connections: Connections, pool: UpstreamPool,
                 access: AccessPolicy, outbound: Outbound, cookies: CookiePolicy) -> None:
        self._cookies = cookies
        self._outbound = outbound
        self._identity = identity
        self._connections = connections
        self._pool = pool
        self._access = access

    def routes(self) -> list[ApiRoute]:
        return [
            ApiRoute("GET", "/api/connections", self.index, "Per-user upstreams you may use, with your linked"
                     " accounts there (never their credentials)", "connections"),
            ApiRoute("POST", "/api/connections/{server}/authorize", self.authorize, "Start linking an account by"
                     " OAuth: returns the authorization server URL to open (console session only)", "connections",
                     body=Authorize),
            ApiRoute("POST", "/api/connections/{server}/tokens", self.add_token, "Link an account with a personal"
                     " token", "connections", body=PersonalToken, status=201),
            ApiRoute("POST", "/api/connections/{server}/{label}/default", self.make_default, "Make this account the"
                     " one your calls use by default", "connections", status=204),
            ApiRoute("DELETE", "/api/connections/{server}/{label}", self.unlink, "Unlink an account (its token is"
                     " revoked at the authorization server when it can be)", "connections", status=204),
            ApiRoute("POST", "/api/connections/{server}/test", self.test, "Test connection with your account:"
                     " unreachable, auth_required, auth_ok or tool_call_ok, with what failed", "connections",
                     body=TestConnection),
            ApiRoute("GET", "/oauth/client-metadata.json", self.client_metadata, "Warden's OAuth Client ID Metadata"
                     " Document", "connections", public=True),
        ]

    async def index(self, call: Call) -> dict[str, Any]:
        """Every upstream the caller may use: per-user ones with their accounts and the state of the default
        one; shared ones (nothing to link) with the state of Warden's own session to them."""
        mine = await self._connections.links.of_user(call.user_id)
        items = []
        for connection in self._pool.connections():
            definition = connection.definition
            if not self._access.decide(call.actor, whole_server(definition.name)).allowed:
                continue
            item: dict[str, Any] = {"server": definition.name, "mode": definition.auth.mode,
                                    "ownership": "per_user" if definition.auth.per_user else "shared"}
            if definition.auth.per_user:
                links = [link for link in mine if link.server == definition.name]
                item.update(state=_state(links), accounts=[link.public() for link in links],
                            connect_url=f"{self._connections.settings.connections_url}?server={definition.name}")
            else:
                item.update(state=SHARED_STATES.get(connection.health, "error"), accounts=[],
                            detail=connection.last_error)
            items.append(item)
        return {"items": items}

    async def authorize(self, call: Call) -> Response:
        if call.actor.via != "session":
            raise InvalidInput("authorizing an account needs a signed-in console session: the authorization"
                               " server sends the browser back to it")
        url, cookie, binding = await self._connections.begin(call.user_id, call.path("server"), call.body.label)
        return self._bound(JSONResponse({"authorize_url": url}), call.request, cookie, binding)

    def _bound(self, response: Response, request: Request, cookie: str, binding: str) -> Response:
        """Bind the authorization to this browser. Lax, not Strict: the cookie must come back on the
        authorization server's redirect, a cross-site navigation."""
        response.set_cookie(cookie, binding, max_age=int(STATE_TTL), httponly=True, samesite="lax",
                            secure=self._cookies.is_secure(request), path="/oauth/callback")
        return response

    async def add_token(self, call: Call) -> dict[str, Any]:
        link = await self._connections.add_token(call.user_id, call.path("server"), call.body.label, call.body.token)
        return link.public()

    async def make_default(self, call: Call) -> None:
        await self._connections.make_default(call.user_id, call.path("server"), call.path("label"))

    async def unlink(self, call: Call) -> None:
        await self._connections.unlink(call.user_id, call.path("server"), call.path("label"))

    async def test(self, call: Call) -> dict[str, Any]:
        server = call.path("server")
        shared = self._pool.get(server)
        if shared is None or not self._access.decide(call.actor, whole_server(server)).allowed:
            raise NotFound(f"no MCP server named {server!r}")
        body: TestConnection = call.body
        if not shared.definition.auth.per_user:  # with Warden's own (shared) credential
            report = await probe(shared.definition, shared.reach, body.tool, body.arguments)
            return {**report.as_dict(), "account": None}
        link = await self._connections.links.find(server, call.user_id, body.label)
        if body.label is not None and link is None:
            raise NotFound(f"no {server!r} account labelled {body.label!r} is linked")
        credential = LinkCredential(link, shared.definition, self._connections) if link is not None else None
        report = await probe(shared.definition, Reach(self._outbound, credential), body.tool, body.arguments)
        return {**report.as_dict(), "account": link.label if link else None}

    async def client_metadata(self, call: Call) -> Response:
        return JSONResponse(self._connections.registrations.metadata_document())

    async def connect(self, request: Request) -> Response:
        """One step from a link (what a client is asked to open in band): start linking an account, for
        the signed-in user, and go to the authorization server."""
        server = request.path_params["server"]
        user_id = await self._signed_in_user(request)
        if user_id is None:
            back = request.url.path + ("?" + request.url.query if request.url.query else "")
            return RedirectResponse("/login?next=" + quote(back, safe=""), 303, headers=NO_STORE)
        try:
            url, cookie, binding = await self._connections.begin(user_id, server,
                                                                 request.query_params.get("label", "default"))
        except WardenError as exc:
            return _problem(exc)
        return self._bound(RedirectResponse(url, 303, headers=NO_STORE), request, cookie, binding)

    async def callback(self, request: Request) -> Response:
        """Where the authorization server sends the browser: the pending authorization this browser started
        completes. The answer is a page that moves on to the connections page by a navigation of its own: a
        redirect would stay part of the cross-site navigation, without the console's Strict session cookie."""
        state = request.query_params.get("state", "")
        cookie = binding_cookie(state)
        try:
            link = await self._connections.complete(
                state, request.cookies.get(cookie), await self._signed_in_user(request),
                request.query_params.get("code"), request.query_params.get("error"))
        except WardenError as exc:
            response = _problem(exc)
        else:
            target = f"/connections?linked={quote(link.server)}"
            response = notice_page(
                "Account linked", f"<p>Your {html.escape(link.server)} account <strong>{html.escape(link.label)}"
                f"</strong> is linked. <a href=\"{target}\">Back to connections</a></p>", refresh=target,
                heading_id="linked")
        response.delete_cookie(cookie, path="/oauth/callback")
        return response

    async def _signed_in_user(self, request: Request) -> str | None:
        """The console user of this request when its session cookie came along (same-site navigations)."""
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            return None
        try:
            principal, _ = await self._identity.principal_for_session(token, client_ip(request))
        except AuthenticationFailed:
            return None
        return principal.user.id if principal.user else None


# A shared server's state on the page, from the health of Warden's own session to it.
SHARED_STATES = {"healthy": "connected", "degraded": "connected", "connecting": "connecting", "down": "error",
                  "disabled": "disabled"}


def _state(links: list[Link]) -> str:
    """The server's state for the user: that of their default account, or ``needs_authorization``."""
    default = next((link for link in links if link.is_default), None)
    if default is None:
        return "needs_authorization"
    return default.state


def _problem(exc: WardenError) -> Response:
    return notice_page("The account was not linked", f'<p id="problem">{html.escape(exc.message)}</p>'
                       '<p><a href="/connections">Back to connections</a></p>', exc.status)
