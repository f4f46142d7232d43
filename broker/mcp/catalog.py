"""Namespacing and aggregation across upstreams.

On the aggregate endpoint (``/mcp``) tools and prompts appear as ``<server>__<name>``, and resource URIs and
URI templates get the server name prepended to their scheme (``file:///a`` from server ``docs`` becomes
``docs+file:///a``): clients can still expand templates, and the mapping is reversible because server names
never contain ``+``. On a per-server endpoint (``/mcp/<server>``) the same catalog appears unprefixed.
A virtual server (``/mcp/<virtual>``) shows only its admin-chosen tools, renamed as defined, in that order.
Access decisions always use the upstream's namespaced name, so every endpoint obeys the same rules.
Lists are sorted and paged with an opaque cursor that spans upstreams.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import mcp_types as types

from broker.mcp.errors import UnknownTool
from broker.mcp.pool import UpstreamPool
from broker.mcp.upstream import UpstreamConnection
from broker.mcp.virtual import VirtualServer

SEPARATOR = "__"
PAGE_SIZE = 100
Item = TypeVar("Item")
Visible = Callable[[str], bool]


class UnknownName(UnknownTool):
    """No prompt, resource or template of that name (same JSON-RPC code as an unknown tool)."""


def namespaced(server: str, name: str) -> str:
    return f"{server}{SEPARATOR}{name}"


def whole_server(server: str) -> str:
    """The name access rules use for a server's resources: callers allowed ``server__*`` see them."""
    return f"{server}{SEPARATOR}*"


class CatalogView:
    """The catalog as one endpoint shows it: every upstream prefixed (``server`` None), one unprefixed,
    or a virtual server's chosen tools."""

    def __init__(self, pool: UpstreamPool, server: str | None, virtual: VirtualServer | None = None,
                 own: Mapping[str, UpstreamConnection | None] | None = None) -> None:
        self._pool = pool
        self.server = server
        self._virtual = virtual
        # Per-user servers as the caller sees them: their own session, or None where the server stays hidden
        # until they link an account; a per-user server not named here shows the pool's placeholder.
        self._own = own or {}

    def _get(self, name: str) -> UpstreamConnection | None:
        return self._own[name] if name in self._own else self._pool.get(name)

    def connections(self) -> list[UpstreamConnection]:
        if self._virtual is not None:
            names = dict.fromkeys(t.server for t in self._virtual.tools)
            return [c for c in (self._get(n) for n in names) if c is not None]
        if self.server is None:
            return [c for c in (self._get(p.name) for p in self._pool.connections()) if c is not None]
        connection = self._get(self.server)
        return [connection] if connection else []

    def shown(self, connection: UpstreamConnection, name: str) -> str:
        return namespaced(connection.name, name) if self.server is None else name

    def shown_uri(self, connection: UpstreamConnection, uri: str) -> str:
        return f"{connection.name}+{uri}" if self.server is None else uri

    def tools(self, visible: Visible) -> list[types.Tool]:
        if self._virtual is not None:
            return self._virtual_tools(visible)
        return self._ordered([tool.model_copy(update={"name": self.shown(c, tool.name)})
                              for c in self.connections() for tool in c.tools
                              if visible(namespaced(c.name, tool.name))], lambda t: t.name)

    def _virtual_tools(self, visible: Visible) -> list[types.Tool]:
        assert self._virtual is not None
        shown = []
        for entry in self._virtual.tools:
            connection = self._get(entry.server)
            tool = next((t for t in connection.tools if t.name == entry.upstream_tool), None) if connection else None
            if tool is not None and visible(entry.source):
                update: dict[str, object] = {"name": entry.shown}
                if entry.description is not None:
                    update["description"] = entry.description
                shown.append(tool.model_copy(update=update))
        return shown

    def prompts(self, visible: Visible) -> list[types.Prompt]:
        if self._virtual is not None:
            return []
        return self._ordered([prompt.model_copy(update={"name": self.shown(c, prompt.name)})
                              for c in self.connections() for prompt in c.prompts
                              if visible(namespaced(c.name, prompt.name))], lambda p: p.name)

    def resources(self, visible: Visible) -> list[types.Resource]:
        if self._virtual is not None:
            return []
        return self._ordered([r.model_copy(update={"uri": self.shown_uri(c, str(r.uri))})
                              for c in self.connections() if visible(whole_server(c.name))
                              for r in c.resources], lambda r: str(r.uri))

    def templates(self, visible: Visible) -> list[types.ResourceTemplate]:
        if self._virtual is not None:
            return []
        return self._ordered([t.model_copy(update={"uri_template": self.shown_uri(c, t.uri_template)})
                              for c in self.connections() if visible(whole_server(c.name))
                              for t in c.templates], lambda t: t.uri_template)

    def _ordered(self, items: list[Item], key: Callable[[Item], str]) -> list[Item]:
        """Sorted on the aggregate endpoint (a stable merge of upstreams); the upstream's own order on a
        per-server endpoint, which passes the server through as it is."""
        return sorted(items, key=key) if self.server is None else items

    def resolve_tool(self, name: str, visible: Visible) -> tuple[UpstreamConnection, str]:
        """The connection and upstream name behind a shown tool name; UnknownTool (naming it) otherwise,
        including for a tool the caller may not use: the catalog is exactly what may be called."""
        if self._virtual is not None:
            entry = self._virtual.entry(name)
            connection, tool = (self._get(entry.server), entry.upstream_tool) if entry else (None, name)
        else:
            connection, tool = self._split(name)
        if connection is None or not visible(namespaced(connection.name, tool)) \
                or not any(t.name == tool for t in connection.tools):
            raise UnknownTool(f"unknown tool {name!r}", tool=name)
        return connection, tool

    def unlinked_server(self, name: str) -> str | None:
        """The per-user server behind a tool name when that server is hidden until the caller links an
        account there (a call then says where to link it, rather than that the tool is unknown)."""
        if self._virtual is not None:
            entry = self._virtual.entry(name)
            server = entry.server if entry else None
        elif self.server is not None:
            server = self.server
        else:
            prefix, separator, _ = name.partition(SEPARATOR)
            server = prefix if separator else None
        return server if server is not None and server in self._own and self._own[server] is None else None

    def resolve_prompt(self, name: str, visible: Visible) -> tuple[UpstreamConnection, str]:
        connection, prompt = self._split(name) if self._virtual is None else (None, name)
        if connection is None or not visible(namespaced(connection.name, prompt)) \
                or not any(p.name == prompt for p in connection.prompts):
            raise UnknownName(f"unknown prompt {name!r}", prompt=name)
        return connection, prompt

    def resolve_uri(self, uri: str, visible: Visible) -> tuple[UpstreamConnection, str]:
        if self._virtual is not None:
            raise UnknownName(f"unknown resource {uri!r}", uri=uri)
        if self.server is None:
            server, plus, original = uri.partition("+")
            connection = self._get(server) if plus and "://" in original else None
        else:
            connection, original = self._get(self.server), uri
        if connection is None or not visible(whole_server(connection.name)):
            raise UnknownName(f"unknown resource {uri!r}", uri=uri)
        return connection, original

    def _split(self, name: str) -> tuple[UpstreamConnection | None, str]:
        if self.server is not None:
            return self._get(self.server), name
        server, separator, rest = name.partition(SEPARATOR)
        return (self._get(server) if separator else None), rest


def page(items: Sequence[Item], cursor: str | None) -> tuple[list[Item], str | None]:
    """One page of an aggregated list, and the cursor of the next page (None on the last)."""
    start = _offset(cursor)
    end = start + PAGE_SIZE
    following = base64.urlsafe_b64encode(str(end).encode()).decode() if end < len(items) else None
    return list(items[start:end]), following


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        value = int(base64.urlsafe_b64decode(cursor.encode()).decode())
    except (ValueError, UnicodeDecodeError):
        raise UnknownName("invalid cursor", cursor=cursor) from None
    if value < 0:
        raise UnknownName("invalid cursor", cursor=cursor)
    return value
