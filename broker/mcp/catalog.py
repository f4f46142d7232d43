"""Namespacing and aggregation across upstreams.

Tools and prompts appear as ``<server>__<name>``; resource URIs and URI templates get the server name
prepended to their scheme (``file:///a`` from server ``docs`` becomes ``docs+file:///a``), which keeps
templates expandable by the client and is reversible because server names never contain ``+``.
Aggregated lists are sorted and paged with an opaque cursor that spans upstreams.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import TypeVar

import mcp_types as types

from broker.mcp.errors import UnknownTool
from broker.mcp.pool import UpstreamPool
from broker.mcp.upstream import UpstreamConnection

SEPARATOR = "__"
PAGE_SIZE = 100
Item = TypeVar("Item")


class UnknownName(UnknownTool):
    """No prompt, resource or template of that name (same JSON-RPC code as an unknown tool)."""


def namespaced(server: str, name: str) -> str:
    return f"{server}{SEPARATOR}{name}"


def namespaced_uri(server: str, uri: str) -> str:
    return f"{server}+{uri}"


def resolve(pool: UpstreamPool, name: str) -> tuple[UpstreamConnection, str]:
    """The connection and upstream tool name behind a namespaced tool name, or UnknownTool naming it."""
    connection, tool = _split(pool, name)
    if connection is None or not any(t.name == tool for t in connection.tools):
        raise UnknownTool(f"unknown tool {name!r}", tool=name)
    return connection, tool


def resolve_prompt(pool: UpstreamPool, name: str) -> tuple[UpstreamConnection, str]:
    connection, prompt = _split(pool, name)
    if connection is None or not any(p.name == prompt for p in connection.prompts):
        raise UnknownName(f"unknown prompt {name!r}", prompt=name)
    return connection, prompt


def resolve_uri(pool: UpstreamPool, uri: str) -> tuple[UpstreamConnection, str]:
    server, plus, original = uri.partition("+")
    connection = pool.get(server) if plus and "://" in original else None
    if connection is None:
        raise UnknownName(f"unknown resource {uri!r}", uri=uri)
    return connection, original


def _split(pool: UpstreamPool, name: str) -> tuple[UpstreamConnection | None, str]:
    server, separator, rest = name.partition(SEPARATOR)
    return (pool.get(server) if separator else None), rest


def aggregate_tools(pool: UpstreamPool, visible: Callable[[str], bool]) -> list[types.Tool]:
    """Tools of every upstream with a live catalog that ``visible`` admits, prefixed, sorted by name."""
    tools = []
    for connection in pool.connections():
        for tool in connection.tools:
            name = namespaced(connection.name, tool.name)
            if visible(name):
                tools.append(tool.model_copy(update={"name": name}))
    return sorted(tools, key=lambda t: t.name)


def aggregate_prompts(pool: UpstreamPool, visible: Callable[[str], bool]) -> list[types.Prompt]:
    prompts = []
    for connection in pool.connections():
        for prompt in connection.prompts:
            name = namespaced(connection.name, prompt.name)
            if visible(name):
                prompts.append(prompt.model_copy(update={"name": name}))
    return sorted(prompts, key=lambda p: p.name)


def aggregate_resources(pool: UpstreamPool, server_visible: Callable[[str], bool]) -> list[types.Resource]:
    resources = [
        resource.model_copy(update={"uri": namespaced_uri(connection.name, str(resource.uri))})
        for connection in pool.connections() if server_visible(connection.name)
        for resource in connection.resources
    ]
    return sorted(resources, key=lambda r: str(r.uri))


def aggregate_templates(pool: UpstreamPool, server_visible: Callable[[str], bool]) -> list[types.ResourceTemplate]:
    templates = [
        template.model_copy(update={"uri_template": namespaced_uri(connection.name, template.uri_template)})
        for connection in pool.connections() if server_visible(connection.name)
        for template in connection.templates
    ]
    return sorted(templates, key=lambda t: t.uri_template)


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
