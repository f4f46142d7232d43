"""A test upstream MCP server built with the SDK's high-level server.

    python -m tests.mcp.demo_upstream                       # stdio
    python -m tests.mcp.demo_upstream streamable-http PORT  # Streamable HTTP at /mcp
    python -m tests.mcp.demo_upstream sse PORT              # legacy HTTP+SSE at /sse
"""

from __future__ import annotations

import os
import sys

import anyio
import mcp_types as types
from mcp.server.mcpserver import Context, MCPServer

app = MCPServer(os.environ.get("DEMO_NAME", "demo"))


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


@app.prompt()
def review(language: str) -> str:
    """Ask for a code review in a language."""
    return f"Please review this {language} code."


@app.resource("demo://readme", mime_type="text/plain")
def readme() -> str:
    """A static text resource."""
    return "demo readme"


@app.resource("demo://items/{item_id}", mime_type="text/plain")
def item(item_id: str) -> str:
    """A templated resource."""
    return f"item {item_id}"


@app.completion()
async def complete(ref: object, argument: types.CompletionArgument, context: object) -> types.Completion | None:
    if argument.name == "language":
        return types.Completion(values=[v for v in ("python", "perl", "rust") if v.startswith(argument.value)])
    return None


if __name__ == "__main__":
    transport = sys.argv[1] if len(sys.argv) > 1 else "stdio"
    if transport == "stdio":
        app.run()
    else:
        app.run(transport, host="127.0.0.1", port=int(sys.argv[2]))  # type: ignore[call-overload]
