"""Namespacing and aggregation: every upstream's tools appear as ``<server>__<tool>``, in a stable order."""

from __future__ import annotations

from collections.abc import Callable

import mcp_types as types

from broker.mcp.errors import UnknownTool
from broker.mcp.pool import UpstreamPool
from broker.mcp.upstream import UpstreamConnection

SEPARATOR = "__"


def namespaced(server: str, tool: str) -> str:
    return f"{server}{SEPARATOR}{tool}"


def resolve(pool: UpstreamPool, name: str) -> tuple[UpstreamConnection, str]:
    """The connection and upstream tool name behind a namespaced tool name, or UnknownTool naming it."""
    server, separator, tool = name.partition(SEPARATOR)
    connection = pool.get(server) if separator else None
    if connection is None or not any(t.name == tool for t in connection.tools):
        raise UnknownTool(f"unknown tool {name!r}", tool=name)
    return connection, tool


def aggregate_tools(pool: UpstreamPool, visible: Callable[[str], bool]) -> list[types.Tool]:
    """Tools of every upstream with a live catalog that ``visible`` admits, prefixed, sorted by name."""
    tools = []
    for connection in pool.connections():
        for tool in connection.tools:
            name = namespaced(connection.name, tool.name)
            if visible(name):
                tools.append(tool.model_copy(update={"name": name}))
    return sorted(tools, key=lambda t: t.name)
