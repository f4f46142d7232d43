"""``tools/call`` sent straight over an upstream session's HTTP connections, for calls that only get a result.

The SDK's client passes every request through memory streams, a task per request and httpx2's models before
aiohttp sends it; on a plain call that machinery costs more CPU than everything else Warden does for it. When
nothing but the result can come back — the client asked for no progress and can be asked nothing, and the
upstream declares no logging — there is nothing for that machinery to route, and Warden posts the call itself:
on the session the SDK opened (the headers the SDK sent on its latest request: session id, protocol version,
credentials), through the same aiohttp connection pool, reading a JSON or SSE answer. The handshake, pings,
catalogs, resumable streams and every request that may carry more than a result stay with the SDK; an
upstream that no longer knows the session (404) gets the call through the SDK instead, which reconnects.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from contextlib import suppress
from typing import Any

import aiohttp
import anyio
import mcp_types as types
from mcp import ClientSession
from mcp.shared.exceptions import MCPError
from yarl import URL

from broker.mcp.http_transport import as_httpx_errors

# Headers the lane sets itself, or that belong to one request only.
_PER_REQUEST = frozenset({"host", "content-length", "transfer-encoding", "connection", "content-type", "accept",
                          "last-event-id", "mcp-method", "mcp-name"})
_ACCEPT = "application/json, text/event-stream"
CANCEL_NOTICE_SECONDS = 2.0
# The call is bounded by the upstream's timeout around it (UpstreamConnection.forward); no timer of aiohttp's own.
_PLAIN_POST: dict[str, Any] = {"allow_redirects": False, "timeout": aiohttp.ClientTimeout(total=None),
                               "skip_auto_headers": ("User-Agent", "Accept-Encoding")}


class DirectLane:
    """Direct ``tools/call`` on one upstream session; it learns the session from the SDK's own requests."""

    def __init__(self, url: str, connections: aiohttp.ClientSession | None = None) -> None:
        self._url = URL(url)  # parsed once, not per call
        self._connections = connections
        self._headers: dict[str, str] = {}
        self._posting: dict[str, str] | None = None  # the headers of the lane's POSTs, made once per change
        self._ids = itertools.count(1)

    def observe(self, method: str, headers: list[tuple[str, str]]) -> None:
        """What the SDK sent: a POST carries the session's headers, a DELETE ends the session."""
        if method == "DELETE":
            self._headers = {}
        elif method == "POST":
            self._headers = {k.lower(): v for k, v in headers if k.lower() not in _PER_REQUEST}
        self._posting = None

    def _post_headers(self) -> dict[str, str]:
        if self._posting is None:
            self._posting = {**self._headers, "content-type": "application/json", "accept": _ACCEPT}
        return self._posting

    def use(self, connections: aiohttp.ClientSession | None) -> None:
        self._connections = connections

    @property
    def ready(self) -> bool:
        """Whether the session is known (the SDK has sent a request on it after initializing)."""
        return self._connections is not None and "mcp-session-id" in self._headers

    async def call_tool(self, session: ClientSession, name: str, arguments: dict[str, Any] | None
                        ) -> types.CallToolResult | None:
        """The upstream's result; None when the lane cannot take this call (use the SDK's session).
        Raises MCPError for the upstream's JSON-RPC error and httpx2 transport errors as the SDK would."""
        if not self.ready or self._connections is None:
            return None
        request_id = f"warden-{next(self._ids)}"
        body = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
                           "params": {"name": name, "arguments": arguments or {}}}, separators=(",", ":")).encode()
        try:
            with as_httpx_errors():
                async with self._connections.post(self._url, data=body, headers=self._post_headers(),
                                                  **_PLAIN_POST) as response:
                    if response.status == 404:
                        self.observe("DELETE", [])  # the upstream dropped the session; the SDK opens a new one
                        return None
                    reply = await self._reply(response, request_id)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True), anyio.move_on_after(CANCEL_NOTICE_SECONDS):
                await self._send({"jsonrpc": "2.0", "method": "notifications/cancelled",
                                  "params": {"requestId": request_id, "reason": "the caller went away"}})
            raise
        if "error" in reply:
            error = types.ErrorData.model_validate(reply["error"])
            raise MCPError(error.code, error.message, error.data)
        result = types.CallToolResult.model_validate(reply.get("result"), by_name=False)
        if not result.is_error:
            await session.validate_tool_result(name, result)
        return result

    async def _reply(self, response: aiohttp.ClientResponse, request_id: str) -> dict[str, Any]:
        content_type = response.headers.get("content-type", "").lower()
        if response.status >= 400:
            if content_type.startswith("application/json"):
                with suppress(ValueError):
                    parsed = json.loads(await response.read())
                    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
                        return parsed
            return {"error": {"code": types.INTERNAL_ERROR, "message": "Server returned an error response"}}
        if content_type.startswith("application/json"):
            try:
                parsed = json.loads(await response.read())
            except ValueError as exc:
                return {"error": {"code": types.PARSE_ERROR, "message": f"Failed to parse JSON response: {exc}"}}
            return parsed if isinstance(parsed, dict) else {
                "error": {"code": types.PARSE_ERROR, "message": "the response is not a JSON-RPC message"}}
        if content_type.startswith("text/event-stream"):
            async for message in _events(response):
                if message.get("id") == request_id and ("result" in message or "error" in message):
                    return message
                if "method" in message and message.get("id") is not None:
                    await self._refuse(message)
            return {"error": {"code": types.CONNECTION_CLOSED, "message": "SSE stream ended without a response"}}
        return {"error": {"code": types.INVALID_REQUEST, "message": f"Unexpected content type: {content_type}"}}

    async def _refuse(self, request: dict[str, Any]) -> None:
        """An upstream request on the call's stream (it may ask nothing of a client that declared nothing)."""
        if request.get("method") == "ping":
            await self._send({"jsonrpc": "2.0", "id": request["id"], "result": {}})
            return
        await self._send({"jsonrpc": "2.0", "id": request["id"], "error": {
            "code": types.METHOD_NOT_FOUND, "message": f"{request.get('method')} is not supported by this client"}})

    async def _send(self, message: dict[str, Any]) -> None:
        if self._connections is None:
            return
        with as_httpx_errors():
            async with self._connections.post(self._url, data=json.dumps(message).encode(),
                                              headers=self._post_headers(), **_PLAIN_POST) as response:
                await response.read()


async def _events(response: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
    """The JSON-RPC messages of an SSE body (``data`` lines of each event; empty priming events skipped)."""
    data: list[str] = []
    async for raw in response.content:
        line = raw.decode("utf-8").rstrip("\r\n")
        if line:
            if line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
            continue
        if data:
            message: Any = None
            with suppress(ValueError):  # not JSON: not a message for this client
                message = json.loads("\n".join(data))
            data = []
            if isinstance(message, dict):
                yield message
