"""A test upstream built with the SDK's low-level server that declares tools only (no logging), so plain calls
to it take Warden's direct lane. It records the JSON-RPC ids it was called with and the calls cancelled.

    python -m tests.mcp.plain_upstream PORT json|sse
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from typing import Any

import anyio
import mcp_types as types
import uvicorn
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

seen_ids: list[str] = []
cancelled: list[str] = []
TOOLS = [
    types.Tool(name="echo", input_schema={"type": "object", "properties": {"text": {"type": "string"}}}),
    types.Tool(name="weather", input_schema={"type": "object"}, output_schema={
        "type": "object", "properties": {"celsius": {"type": "number"}}, "required": ["celsius"]}),
    types.Tool(name="bad_weather", input_schema={"type": "object"}, output_schema={
        "type": "object", "properties": {"celsius": {"type": "number"}}, "required": ["celsius"]}),
    types.Tool(name="picture", input_schema={"type": "object"}),
    types.Tool(name="fail", input_schema={"type": "object"}),
    types.Tool(name="refuse", input_schema={"type": "object"}),
    types.Tool(name="region", input_schema={"type": "object", "properties": {
        "region": {"type": "string", "x-mcp-header": "Region"}}}),
    types.Tool(name="sleep", input_schema={"type": "object", "properties": {"seconds": {"type": "number"}}}),
    types.Tool(name="credentials", input_schema={"type": "object"}),  # what the caller sent to authenticate
]


async def list_tools(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
                     ) -> types.ListToolsResult:
    return types.ListToolsResult(tools=TOOLS)


async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
    seen_ids.append(str(ctx.request_id))
    arguments = params.arguments or {}
    if params.name == "echo":
        return types.CallToolResult(content=[types.TextContent(text=str(arguments.get("text", "")))])
    if params.name == "weather":
        return types.CallToolResult(content=[types.TextContent(text="21")], structured_content={"celsius": 21})
    if params.name == "bad_weather":
        return types.CallToolResult(content=[types.TextContent(text="?")], structured_content={"kelvin": "x"})
    if params.name == "picture":
        return types.CallToolResult(content=[types.ImageContent(data="iVBORw0KGgo=", mime_type="image/png"),
                                             types.TextContent(text="a picture")])
    if params.name == "fail":
        return types.CallToolResult(content=[types.TextContent(text="it failed")], is_error=True)
    if params.name == "refuse":
        raise MCPError(types.INVALID_PARAMS, "refuse refuses", {"why": "always"})
    if params.name == "region":
        return types.CallToolResult(content=[types.TextContent(text=str(arguments.get("region")))])
    if params.name == "credentials":
        request = ctx.request
        assert isinstance(request, Request)
        return types.CallToolResult(content=[], structured_content={
            "authorization": request.headers.get("authorization"), "x-api-key": request.headers.get("x-api-key"),
            "query": dict(request.query_params)})
    if params.name == "sleep":
        try:
            await anyio.sleep(float(arguments.get("seconds", 1)))
        except anyio.get_cancelled_exc_class():
            cancelled.append(str(ctx.request_id))
            raise
        return types.CallToolResult(content=[types.TextContent(text="slept")])
    raise MCPError(types.INVALID_PARAMS, f"unknown tool {params.name}")


async def record(request: Request) -> JSONResponse:
    return JSONResponse({"ids": seen_ids, "cancelled": cancelled})


def app(json_response: bool) -> Starlette:
    server: Server[Any] = Server("plain", version="1", on_list_tools=list_tools, on_call_tool=call_tool)
    manager = StreamableHTTPSessionManager(app=server, json_response=json_response)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with manager.run():
            yield

    return Starlette(routes=[Route("/mcp", endpoint=StreamableHTTPASGIApp(manager)),
                             Route("/record", endpoint=record)], lifespan=lifespan)


if __name__ == "__main__":
    uvicorn.run(app(sys.argv[2] == "json"), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
