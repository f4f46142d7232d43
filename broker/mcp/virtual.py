"""Virtual servers: an admin-defined set of tools drawn from several upstreams, with optional renames,
served at ``/mcp/<name>`` so a team can hand an agent a small, focused catalog.

A virtual server shows only its tools (no prompts or resources), in the order the admin listed them. Access
rules, quotas, caching and audit apply to the upstream tool behind each entry, exactly as on ``/mcp``.
Virtual and upstream servers share one namespace of names.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from broker.kernel.clock import Clock
from broker.kernel.errors import Conflict, FieldError, InvalidInput, NotFound
from broker.kernel.store.errors import UniqueViolation
from broker.kernel.store.ports import Database, Row

_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]|_(?!_))*$")
_SOURCE = re.compile(r"^[a-z0-9][a-z0-9_-]*__\S+$")
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")  # the MCP tool-name grammar


@dataclass(frozen=True, slots=True)
class VirtualTool:
    """One entry: the upstream tool (``server__tool``), and how the virtual server shows it."""

    source: str
    name: str | None = None  # None: the upstream tool's own name
    description: str | None = None  # None: the upstream's description

    @property
    def server(self) -> str:
        return self.source.partition("__")[0]

    @property
    def upstream_tool(self) -> str:
        return self.source.partition("__")[2]

    @property
    def shown(self) -> str:
        return self.name or self.upstream_tool


@dataclass(frozen=True, slots=True)
class VirtualServer:
    name: str
    tools: tuple[VirtualTool, ...]
    description: str = ""

    def entry(self, shown: str) -> VirtualTool | None:
        return next((t for t in self.tools if t.shown == shown), None)


def validate_virtual(server: VirtualServer) -> None:
    problems = []
    if not _NAME.match(server.name) or len(server.name) > 40:
        problems.append(FieldError("name", "lowercase letters, digits, '-' and single '_', at most 40"))
    if not server.tools:
        problems.append(FieldError("tools", "a virtual server needs at least one tool"))
    seen: set[str] = set()
    for index, tool in enumerate(server.tools):
        if not _SOURCE.match(tool.source):
            problems.append(FieldError(f"tools[{index}].tool", "must be server__tool"))
        if tool.name is not None and not _TOOL_NAME.match(tool.name):
            problems.append(FieldError(f"tools[{index}].name", "1-128 of A-Z a-z 0-9 _ - ."))
        if tool.shown in seen:
            problems.append(FieldError(f"tools[{index}]", f"two tools would be shown as {tool.shown!r}; rename one"))
        seen.add(tool.shown)
    if problems:
        raise InvalidInput("invalid virtual server", problems)


class VirtualServerStore:
    """CRUD over ``mcp_virtual_servers``; a name taken by an upstream server is refused."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def all(self) -> list[tuple[VirtualServer, str]]:
        rows = await self._db.fetch("SELECT * FROM mcp_virtual_servers ORDER BY name")
        return [(_virtual(row), row["source"]) for row in rows]

    async def get(self, name: str) -> tuple[VirtualServer, str]:
        row = await self._db.fetchrow("SELECT * FROM mcp_virtual_servers WHERE name = ?", name)
        if row is None:
            raise NotFound(f"virtual MCP server {name!r} not found")
        return _virtual(row), row["source"]

    async def create(self, server: VirtualServer, source: str = "api") -> VirtualServer:
        validate_virtual(server)
        if await self._db.fetchrow("SELECT name FROM mcp_servers WHERE name = ?", server.name) is not None:
            raise Conflict(f"an upstream MCP server is named {server.name!r}; virtual servers share its names")
        now = self._clock.now()
        try:
            await self._db.execute(
                "INSERT INTO mcp_virtual_servers (name, description, tools, source, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)", server.name, server.description, _tools_json(server), source, now, now)
        except UniqueViolation as exc:
            raise Conflict(f"a virtual MCP server named {server.name!r} already exists") from exc
        return server

    async def replace(self, server: VirtualServer) -> VirtualServer:
        _, source = await self.get(server.name)
        if source == "config":
            raise Conflict("this virtual server comes from the configuration file; change it there")
        validate_virtual(server)
        await self._db.execute("UPDATE mcp_virtual_servers SET description = ?, tools = ?, updated_at = ?"
                               " WHERE name = ?", server.description, _tools_json(server), self._clock.now(),
                               server.name)
        return server

    async def delete(self, name: str) -> None:
        _, source = await self.get(name)
        if source == "config":
            raise Conflict("this virtual server comes from the configuration file; remove it there")
        await self._db.execute("DELETE FROM mcp_virtual_servers WHERE name = ?", name)

    async def reconcile_config(self, servers: list[VirtualServer]) -> None:
        """Make the file's virtual servers exactly the ``config`` ones in the store."""
        present = {s.name: source for s, source in await self.all()}
        wanted = {s.name: s for s in servers}
        for name, source in present.items():
            if source == "config" and name not in wanted:
                await self._db.execute("DELETE FROM mcp_virtual_servers WHERE name = ?", name)
        for name, server in wanted.items():
            if present.get(name) == "api":
                raise Conflict(f"mcp_virtual_servers: {name!r} already exists, created through the API")
            if name in present:
                await self._db.execute("DELETE FROM mcp_virtual_servers WHERE name = ?", name)
            await self.create(server, source="config")


class VirtualServers:
    """The definitions in memory, replaced whenever any instance changes them."""

    def __init__(self) -> None:
        self._servers: dict[str, VirtualServer] = {}

    def replace(self, servers: list[VirtualServer]) -> None:
        self._servers = {s.name: s for s in servers}

    def get(self, name: str) -> VirtualServer | None:
        return self._servers.get(name)


def _virtual(row: Row) -> VirtualServer:
    tools = tuple(VirtualTool(t["tool"], t.get("name"), t.get("description")) for t in json.loads(row["tools"]))
    return VirtualServer(row["name"], tools, row["description"])


def _tools_json(server: VirtualServer) -> str:
    return json.dumps([{"tool": t.source, "name": t.name, "description": t.description} for t in server.tools])
