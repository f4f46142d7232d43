"""A test upstream MCP server built with the SDK's high-level server.

    python -m tests.mcp.demo_upstream                       # stdio
    python -m tests.mcp.demo_upstream streamable-http PORT  # Streamable HTTP at /mcp
    python -m tests.mcp.demo_upstream sse PORT              # legacy HTTP+SSE at /sse
"""

from __future__ import annotations

import os
import sys
from typing import Any

import anyio
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.prompts.base import Message, UserMessage
from mcp.server.mcpserver.utilities.types import Audio, Image
from pydantic import BaseModel

app = MCPServer(os.environ.get("DEMO_NAME", "demo"))
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000")  # a PNG header is enough
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt "
LEVELS = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]


@app.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@app.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@app.tool()
async def countdown(steps: int, ctx: Context) -> str:
    """Report one progress notification per step, 50 ms apart, then finish."""
    for step in range(1, steps + 1):
        await ctx.report_progress(step, steps, f"step {step}")
        await anyio.sleep(0.05)
    return "done"


@app.tool()
def explode() -> str:
    """Fail inside the tool (an isError result, not an outage)."""
    raise ValueError("the tool failed on purpose")


@app.tool()
async def hang() -> str:
    """Never answer."""
    await anyio.sleep_forever()
    return "unreachable"


@app.tool()
def whoami() -> int:
    """The upstream process id (to tell restarts apart)."""
    return os.getpid()


@app.tool()
def die() -> str:
    """Exit the process mid-call."""
    os._exit(3)


_calls = {"count": 0}


@app.tool()
def counter(label: str = "") -> int:
    """How many times this tool has run in this process (to tell cached results from fresh ones)."""
    _calls["count"] += 1
    return _calls["count"]


@app.tool()
def picture() -> Image:
    """An image."""
    return Image(data=PNG, format="png")


@app.tool()
def sound() -> Audio:
    """An audio clip."""
    return Audio(data=WAV, format="wav")


@app.tool()
def attachment() -> types.EmbeddedResource:
    """An embedded resource."""
    return types.EmbeddedResource(type="resource", resource=types.TextResourceContents(
        uri="demo://readme", mime_type="text/plain", text="demo readme"))


@app.tool()
def mixed() -> types.CallToolResult:
    """Text, an image and a resource link in one result."""
    return types.CallToolResult(content=[
        types.TextContent(type="text", text="caption"), Image(data=PNG, format="png").to_image_content(),
        types.ResourceLink(type="resource_link", uri="demo://readme", name="readme")])


def _state(ctx: ServerRequestContext[Any, Any]) -> dict[str, Any]:
    return ctx.session._connection.state


@app.tool()
async def chatty(ctx: Context) -> str:
    """Log one message at each of debug, info and warning (filtered by logging/setLevel), then finish."""
    request = ctx.request_context
    floor = LEVELS.index(_state(request).get("level", "debug"))
    for level in ("debug", "info", "warning"):
        if LEVELS.index(level) >= floor:
            await request.session.send_notification(types.LoggingMessageNotification(
                params=types.LoggingMessageNotificationParams(level=level, data=f"{level} line", logger="demo")),
                related_request_id=request.request_id)
        await anyio.sleep(0.02)
    return "talked"


@app.tool()
async def ask_model(question: str, ctx: Context) -> Any:
    """Ask the client's model (sampling) and return its answer: on the session (handshake era), or as an
    input_required result answered by the client's retry (2026-07-28)."""
    request = ctx.request_context
    if request.protocol_version == "2026-07-28":
        answer = (ctx.input_responses or {}).get("model")
        if isinstance(answer, types.CreateMessageResult) and isinstance(answer.content, types.TextContent):
            return answer.content.text
        return types.InputRequiredResult(request_state="asked", input_requests={"model": types.CreateMessageRequest(
            params=types.CreateMessageRequestParams(messages=[types.SamplingMessage(
                role="user", content=types.TextContent(type="text", text=question))], max_tokens=50))})
    result = await request.session.create_message(
        [types.SamplingMessage(role="user", content=types.TextContent(type="text", text=question))],
        max_tokens=50, related_request_id=request.request_id)
    return result.content.text if isinstance(result.content, types.TextContent) else "?"


class Favourite(BaseModel):
    colour: str


class Person(BaseModel):
    name: str


@app.tool()
async def ask_user(ctx: Context) -> str:
    """Ask the user for their favourite colour (elicitation)."""
    answer = await ctx.elicit("What is your favourite colour?", Favourite)
    return answer.data.colour if answer.action == "accept" else answer.action


@app.tool()
async def roots(ctx: Context) -> list[str]:
    """The client's roots."""
    listed = await ctx.request_context.session.list_roots()
    return [str(root.uri) for root in listed.roots]


@app.tool()
async def grow(ctx: Context) -> str:
    """Add a tool named ``grown`` and announce the change (to sessions and to listen streams)."""
    app.add_tool(lambda: "grown", name="grown", description="Appeared at run time.")
    await ctx.notify_tools_changed()
    if ctx.request_context.protocol_version != "2026-07-28":
        await ctx.request_context.session.send_tool_list_changed()
    return "grew"


@app.tool()
async def touch(uri: str, ctx: Context) -> bool:
    """Tell subscribers of a resource that it changed; whether this session was subscribed (2026-07-28:
    listeners are told through subscriptions/listen, and the answer is always true)."""
    request = ctx.request_context
    if request.protocol_version == "2026-07-28":
        await ctx.notify_resource_updated(uri)
        return True
    if uri not in _state(request).get("subscriptions", set()):
        return False
    await request.session.send_resource_updated(uri)
    return True


async def _subscribe(ctx: ServerRequestContext[Any, Any], params: types.SubscribeRequestParams) -> types.EmptyResult:
    _state(ctx).setdefault("subscriptions", set()).add(str(params.uri))
    return types.EmptyResult()


async def _unsubscribe(ctx: ServerRequestContext[Any, Any], params: types.UnsubscribeRequestParams
                       ) -> types.EmptyResult:
    _state(ctx).setdefault("subscriptions", set()).discard(str(params.uri))
    return types.EmptyResult()


async def _set_level(ctx: ServerRequestContext[Any, Any], params: types.SetLevelRequestParams) -> types.EmptyResult:
    _state(ctx)["level"] = params.level
    return types.EmptyResult()


app._lowlevel_server.add_request_handler("resources/subscribe", types.SubscribeRequestParams, _subscribe)
app._lowlevel_server.add_request_handler("resources/unsubscribe", types.UnsubscribeRequestParams, _unsubscribe)
app._lowlevel_server.add_request_handler("logging/setLevel", types.SetLevelRequestParams, _set_level)


@app.prompt()
def show(subject: str) -> list[Message]:
    """A prompt with an image and an embedded resource."""
    return [UserMessage(content=f"Describe {subject}."),
            UserMessage(content=types.ImageContent(type="image", data="iVBORw0KGgo=", mime_type="image/png")),
            UserMessage(content=types.EmbeddedResource(type="resource", resource=types.TextResourceContents(
                uri="demo://readme", mime_type="text/plain", text="demo readme")))]


@app.prompt()
async def personal(ctx: Context) -> Any:
    """A prompt that needs the user's name: asked by elicitation on the session, or (2026-07-28) as
    input_required."""
    if ctx.request_context.protocol_version == "2026-07-28":
        answer = (ctx.input_responses or {}).get("name")
        if not isinstance(answer, types.ElicitResult):
            return types.InputRequiredResult(request_state="asked", input_requests={"name": types.ElicitRequest(
                params=types.ElicitRequestFormParams(message="Your name?", requested_schema={
                    "type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}))})
        name = (answer.content or {}).get("name", "?")
    else:
        answer = await ctx.elicit("Your name?", Person)
        name = answer.data.name if answer.action == "accept" else answer.action
    return f"Hello {name}."


@app.prompt()
def review(language: str) -> str:
    """Ask for a code review in a language."""
    return f"Please review this {language} code."


@app.resource("demo://readme", mime_type="text/plain")
def readme() -> str:
    """A static text resource."""
    return "demo readme"


@app.resource("demo://logo.png", mime_type="image/png")
def logo() -> bytes:
    """A binary resource."""
    return PNG


@app.resource("demo://items/{item_id}", mime_type="text/plain")
def item(item_id: str) -> str:
    """A templated resource."""
    return f"item {item_id}"


@app.completion()
async def complete(ref: object, argument: types.CompletionArgument, context: object) -> types.Completion | None:
    if argument.name == "language":
        return types.Completion(values=[v for v in ("python", "perl", "rust") if v.startswith(argument.value)])
    return None


async def _modern_only(ctx: ServerRequestContext[Any, Any], call_next: Any) -> Any:
    """A server of the 2026-07-28 revision only: the initialize handshake is refused with -32022."""
    if ctx.method == "initialize":
        from mcp.shared.exceptions import MCPError
        from mcp_types.version import MODERN_PROTOCOL_VERSIONS

        requested = str((ctx.params or {}).get("protocolVersion"))
        raise MCPError(types.UNSUPPORTED_PROTOCOL_VERSION, "this server speaks only 2026-07-28",
                       {"supported": list(MODERN_PROTOCOL_VERSIONS), "requested": requested})
    return await call_next(ctx)


if os.environ.get("DEMO_MODERN_ONLY"):
    app._lowlevel_server.middleware.append(_modern_only)


if __name__ == "__main__":
    transport = sys.argv[1] if len(sys.argv) > 1 else "stdio"
    if transport == "stdio":
        app.run()
    else:
        app.run(transport, host="127.0.0.1", port=int(sys.argv[2]))  # type: ignore[call-overload]
