"""Upstream definitions with tool options, and virtual servers, at rest on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from broker.app import Kernel
from broker.kernel.errors import Conflict, InvalidInput
from broker.mcp.servers import McpServerStore, ToolOptions, UpstreamDefinition
from broker.mcp.virtual import VirtualServer, VirtualServerStore, VirtualTool
from tests.conftest import FakeClock


async def test_tool_options_round_trip(kernel: Kernel, clock: FakeClock) -> None:
    store = McpServerStore(kernel.db, clock, kernel.box)
    options = {"search": ToolOptions(cache_ttl_seconds=30), "*": ToolOptions(requires_user_credential=True)}
    await store.create(UpstreamDefinition("docs", "streamable_http", url="http://127.0.0.1:9/mcp",
                                          tool_options=options))
    stored, _ = await store.get("docs")
    assert stored.tool_options == options
    assert stored.options_for("search").cache_ttl_seconds == 30
    assert stored.options_for("other").requires_user_credential is True
    updated = await store.update("docs", {"tool_options": {}})
    assert (await store.get("docs"))[0].options_for("search") == ToolOptions() == updated.options_for("search")
    with pytest.raises(InvalidInput):
        await store.update("docs", {"tool_options": {"x": ToolOptions(cache_ttl_seconds=-1)}})


async def test_virtual_servers_round_trip_and_share_names_with_upstreams(kernel: Kernel, clock: FakeClock) -> None:
    servers = McpServerStore(kernel.db, clock, kernel.box)
    virtuals = VirtualServerStore(kernel.db, clock)
    await servers.create(UpstreamDefinition("docs", "streamable_http", url="http://127.0.0.1:9/mcp"))
    kit = VirtualServer("kit", (VirtualTool("docs__search", "find", "Find things."), VirtualTool("docs__read")))
    await virtuals.create(kit)
    assert await virtuals.get("kit") == (kit, "api")
    with pytest.raises(Conflict):
        await virtuals.create(VirtualServer("docs", (VirtualTool("docs__read"),)))
    with pytest.raises(Conflict):
        await servers.create(UpstreamDefinition("kit", "streamable_http", url="http://127.0.0.1:9/mcp"))
    with pytest.raises(InvalidInput):
        await virtuals.create(VirtualServer("dup", (VirtualTool("docs__a", "x"), VirtualTool("docs__b", "x"))))
    await virtuals.reconcile_config([VirtualServer("filed", (VirtualTool("docs__read"),))])
    assert [(s.name, source) for s, source in await virtuals.all()] == [("filed", "config"), ("kit", "api")]
    with pytest.raises(Conflict):
        await virtuals.delete("filed")
    await virtuals.delete("kit")
    await virtuals.reconcile_config([])
    assert await virtuals.all() == []
