"""An upstream MCP server that requires access tokens from the tests' authorization server (RFC 9728).

Unauthenticated requests get 401 with ``WWW-Authenticate: Bearer resource_metadata=...``; a token must be a JWT
signed by the authorization server, for this server's URL (``aud``), not expired, of an account the server
still calls active (the tests' stand-in for introspection). Each account sees its own tools: ``whoami`` and
``<account>_only``. ``/record`` lists every authenticated request's account and token (tests grep for the
tokens where they must never appear).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from contextvars import ContextVar
from typing import Any

import anyio
import httpx
import jwt
import mcp_types as types
import uvicorn
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

ACCOUNT: ContextVar[str] = ContextVar("account")
seen: list[dict[str, str]] = []


async def list_tools(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
                     ) -> types.ListToolsResult:
    account = ACCOUNT.get()
    schema = {"type": "object", "properties": {}}
    return types.ListToolsResult(tools=[types.Tool(name="whoami", input_schema=schema),
                                        types.Tool(name=f"{account}_only", input_schema=schema)])


async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=ACCOUNT.get())],
                                structured_content={"account": ACCOUNT.get(), "tool": params.name})


class Protected:
    def __init__(self, inner: StreamableHTTPASGIApp, url: str, issuer: str) -> None:
        self._inner = inner
        self._url = url
        self._issuer = issuer
        self._keys = jwt.PyJWKClient(f"{issuer}/jwks")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        account = await self._account(token) if token else None
        if account is None:
            origin = self._url.rsplit("/mcp", 1)[0]
            challenge = f'Bearer resource_metadata="{origin}/.well-known/oauth-protected-resource/mcp"'
            await JSONResponse({"error": "invalid_token"}, 401, headers={"www-authenticate": challenge})(
                scope, receive, send)
            return
        if request.method == "POST":
            seen.append({"account": account, "token": token})
        reset = ACCOUNT.set(account)
        try:
            await self._inner(scope, receive, send)
        finally:
            ACCOUNT.reset(reset)

    async def _account(self, token: str) -> str | None:
        try:
            key = await anyio.to_thread.run_sync(self._keys.get_signing_key_from_jwt, token)
            claims = jwt.decode(token, key.key, algorithms=["RS256", "ES256", "PS256"], audience=self._url,
                                issuer=self._issuer)
        except jwt.PyJWTError:
            return None
        async with httpx.AsyncClient() as http:
            active = (await http.get(f"{self._issuer}/test/active", params={"sub": claims["sub"]})).json()["active"]
        return str(claims["sub"]) if active else None


async def record(request: Request) -> JSONResponse:
    return JSONResponse({"seen": seen})


async def resource_metadata(request: Request) -> JSONResponse:
    url: str = request.app.state.url
    return JSONResponse({"resource": url, "authorization_servers": [request.app.state.issuer],
                         "bearer_methods_supported": ["header"]})


def app(port: int, issuer: str) -> Starlette:
    url = f"http://127.0.0.1:{port}/mcp"
    server: Server[Any] = Server("protected", version="1", on_list_tools=list_tools, on_call_tool=call_tool)
    manager = StreamableHTTPSessionManager(app=server)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with manager.run():
            yield

    application = Starlette(routes=[
        Route("/mcp", endpoint=Protected(StreamableHTTPASGIApp(manager), url, issuer)),
        Route("/.well-known/oauth-protected-resource/mcp", endpoint=resource_metadata),
        Route("/record", endpoint=record),
    ], lifespan=lifespan)
    application.state.url, application.state.issuer = url, issuer
    return application


if __name__ == "__main__":
    uvicorn.run(app(int(sys.argv[1]), sys.argv[2]), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
