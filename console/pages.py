"""The console's HTML: setup until an admin exists, sign-in, and the single-page console for signed-in users.

Every console page is the same shell (``app.html``); its script draws the page for the URL. The server still
decides who may open which page (``console.navigation``): a page the user may not open answers 403 with a page
saying so, whatever the browser's script would have shown.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response

from broker.edge.credentials import client_ip
from broker.kernel.errors import AuthenticationFailed
from broker.kernel.identity.models import Principal
from broker.kernel.identity.service import Identity
from console.endpoints import SESSION_COOKIE
from console.navigation import page_for

PAGES = Path(__file__).parent / "pages"
# Which page a URL shows depends on state (setup done, signed in): a cached copy would show the wrong one.
_NO_STORE = {"cache-control": "no-store"}


def _page(name: str, status: int = 200) -> Response:
    return FileResponse(PAGES / name, status_code=status, headers=_NO_STORE)


def _redirect(url: str) -> Response:
    return RedirectResponse(url, 303, headers=_NO_STORE)


class Pages:
    """Chooses the page a browser should see for the installation's state."""

    def __init__(self, identity: Identity) -> None:
        self._identity = identity

    async def console(self, request: Request) -> Response:
        """Any page of the single-page console."""
        page = page_for(request.url.path)
        assert page is not None  # only the console's own paths are routed here
        signed_in = await self._signed_in(request)
        if isinstance(signed_in, Response):
            return signed_in
        if not page.open_to(signed_in.permissions):
            return _page("forbidden.html", 403)
        return _page("app.html")

    async def _signed_in(self, request: Request) -> Principal | Response:
        """The session's principal, or where the browser must go first (setup, sign-in)."""
        if await self._identity.setup.required():
            return _redirect("/setup")
        token = request.cookies.get(SESSION_COOKIE)
        try:
            if not token:
                raise AuthenticationFailed("no session")
            principal, _ = await self._identity.principal_for_session(token, client_ip(request))
        except AuthenticationFailed:
            return _redirect("/login")
        return principal

    async def setup(self, request: Request) -> Response:
        if not await self._identity.setup.required():
            return _redirect("/login")
        return _page("setup.html")

    async def login(self, request: Request) -> Response:
        if await self._identity.setup.required():
            return _redirect("/setup")
        return _page("login.html")
