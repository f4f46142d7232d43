"""The console's HTML pages: setup until an admin exists, sign-in, and the signed-in home page."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response

from broker.edge.credentials import client_ip
from broker.kernel.errors import AuthenticationFailed
from broker.kernel.identity.service import Identity
from console.endpoints import SESSION_COOKIE

PAGES = Path(__file__).parent / "pages"
# Which page a URL shows depends on state (setup done, signed in): a cached copy would show the wrong one.
_NO_STORE = {"cache-control": "no-store"}


def _page(name: str) -> Response:
    return FileResponse(PAGES / name, headers=_NO_STORE)


def _redirect(url: str) -> Response:
    return RedirectResponse(url, 303, headers=_NO_STORE)


class Pages:
    """Chooses the page a browser should see for the installation's state."""

    def __init__(self, identity: Identity) -> None:
        self._identity = identity

    async def home(self, request: Request) -> Response:
        return await self._signed_in(request, "home.html")

    async def connections(self, request: Request) -> Response:
        return await self._signed_in(request, "connections.html")

    async def _signed_in(self, request: Request, page: str) -> Response:
        if await self._identity.setup.required():
            return _redirect("/setup")
        token = request.cookies.get(SESSION_COOKIE)
        try:
            if not token:
                raise AuthenticationFailed("no session")
            await self._identity.sessions.resolve(token, client_ip(request))
        except AuthenticationFailed:
            return _redirect("/login")
        return _page(page)

    async def setup(self, request: Request) -> Response:
        if not await self._identity.setup.required():
            return _redirect("/login")
        return _page("setup.html")

    async def login(self, request: Request) -> Response:
        if await self._identity.setup.required():
            return _redirect("/setup")
        return _page("login.html")
