"""Test connection: how far Warden gets with an upstream, with a given credential (or none).

``unreachable``: no answer (refused by the outbound guard, connection failed, timed out, the process did not
start). ``auth_required``: the server answered 401/403 (its ``WWW-Authenticate`` challenge is reported).
``auth_ok``: an MCP session opened and the tools were listed. ``tool_call_ok``: and the named tool answered
without error. Each verdict carries the detail of what failed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
import anyio
import mcp_types as types
from mcp.shared.exceptions import MCPError
from yarl import URL

from broker.kernel.clock import SystemClock
from broker.mcp.servers import UpstreamDefinition
from broker.mcp.upstream import ClientCallbacks, Reach, UpstreamConnection, open_client
from broker.outbound import OutboundRefused

Verdict = Literal["unreachable", "auth_required", "auth_ok", "tool_call_ok"]
_RESOURCE_METADATA = re.compile(r'resource_metadata="([^"]+)"')
_HANDSHAKE = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "warden-probe", "version": "1"}}}


@dataclass(frozen=True, slots=True)
class ProbeReport:
    verdict: Verdict
    detail: str
    tools: list[str] = field(default_factory=list)
    resource_metadata: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "detail": self.detail, "tools": self.tools,
                "resource_metadata": self.resource_metadata}


async def probe(definition: UpstreamDefinition, reach: Reach, tool: str | None = None,
                arguments: dict[str, Any] | None = None) -> ProbeReport:
    if definition.transport != "stdio":
        refused = await _http_answer(definition, reach)
        if refused is not None:
            return refused
    connection = UpstreamConnection(definition, SystemClock(), reach=reach)
    try:
        with anyio.fail_after(definition.timeout_seconds):
            async with open_client(connection, ClientCallbacks()) as (session, _):
                tools = [t.name for t in (await session.list_tools()).tools]
                if tool is None:
                    return ProbeReport("auth_ok", f"connected; {len(tools)} tools listed", tools)
                result = await session.call_tool(tool, arguments or {})
    except TimeoutError:
        return ProbeReport("unreachable", f"no answer within {definition.timeout_seconds:g}s")
    except Exception as exc:  # the SDK raises transport failures grouped, from its task groups
        return ProbeReport("unreachable", _describe(exc))
    if result.is_error:
        text = " ".join(c.text for c in result.content if isinstance(c, types.TextContent))[:300]
        return ProbeReport("auth_ok", f"connected, but {tool} answered with an error: {text}", tools)
    return ProbeReport("tool_call_ok", f"connected; {tool} answered", tools)


async def _http_answer(definition: UpstreamDefinition, reach: Reach) -> ProbeReport | None:
    """One initialize request as the SDK would send it: what an HTTP server says to the credential (the SDK
    reports a refusal only as "an error response")."""
    assert definition.url is not None
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    url = definition.url
    if reach.credential is not None:
        presented = await reach.credential.current()
        headers.update(presented.headers)
        url = str(URL(url).update_query(presented.query)) if presented.query else url
    try:
        async with reach.outbound.session(timeout=definition.timeout_seconds) as http, \
                http.post(url, json=_HANDSHAKE, headers=headers, allow_redirects=False) as response:
            status, challenge = response.status, response.headers.get("www-authenticate", "")
    except OutboundRefused as exc:
        return ProbeReport("unreachable", str(exc))
    except (aiohttp.ClientError, TimeoutError) as exc:
        return ProbeReport("unreachable", f"{type(exc).__name__}: {exc}")
    if status in (401, 403):
        named = _RESOURCE_METADATA.search(challenge)
        return ProbeReport("auth_required", f"the server answered {status}" + (f" ({challenge})" if challenge else ""),
                           resource_metadata=named.group(1) if named else None)
    return None


def _describe(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, MCPError):
        return f"the server answered with an error: {exc.error.message}"
    return f"{type(exc).__name__}: {exc}"[:500]
