"""The outbound guard: internal addresses are refused unless allow-listed, checked where the connection is made.

Names are resolved by an injected resolver and connections are "made" by a recording socket factory that
raises instead of connecting: no test here sends a packet anywhere, and a guard that failed would show up as
a recorded connection to an address it should have refused.
"""

from __future__ import annotations

import socket
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import ResolveResult

from broker.outbound import Outbound, OutboundPolicy, OutboundRefused
from tests.conftest import serving


class ScriptedResolver:
    """Answers each lookup of a name with the next address of its script (the last one repeats)."""

    def __init__(self, script: dict[str, list[str]]) -> None:
        self._script = script
        self.lookups: list[str] = []

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        self.lookups.append(host)
        answers = self._script[host]
        address = answers.pop(0) if len(answers) > 1 else answers[0]
        kind = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [{"hostname": host, "host": address, "port": port, "family": kind, "proto": 0, "flags": 0}]


class RecordingSockets:
    """A socket factory that notes where a connection would go, and fails it before anything is sent."""

    def __init__(self) -> None:
        self.connections: list[str] = []

    def __call__(self, addr_info: Any) -> socket.socket:
        self.connections.append(addr_info[4][0])
        raise OSError("recorded, not connected")


async def fetch(outbound: Outbound, url: str) -> None:
    async with outbound.session(timeout=5) as http, http.get(url):
        pass


@pytest.mark.parametrize(("url", "kind"), [
    ("http://127.0.0.1:9/", "a loopback address"),
    ("http://169.254.169.254/latest/meta-data/", "a cloud metadata address"),
    ("http://10.1.2.3/", "a private address"),
    ("http://[::1]:9/", "a loopback address"),
    ("http://[::ffff:192.168.0.1]/", "a private address"),
    ("http://0.0.0.0/", "not a public address"),
])
async def test_internal_address_literals_are_refused_before_any_connection(url: str, kind: str) -> None:
    sockets = RecordingSockets()
    with pytest.raises(OutboundRefused) as refused:
        await fetch(Outbound(OutboundPolicy(), ScriptedResolver({}), sockets), url)
    assert kind in str(refused.value) and "security.outbound_allow" in str(refused.value)
    assert sockets.connections == []


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.7", "169.254.169.254", "fd00:ec2::254", "100.64.1.1"])
async def test_a_name_resolving_to_an_internal_address_is_refused(address: str) -> None:
    sockets = RecordingSockets()
    resolver = ScriptedResolver({"upstream.example": [address]})
    with pytest.raises(OutboundRefused) as refused:
        await fetch(Outbound(OutboundPolicy(), resolver, sockets), "http://upstream.example/mcp")
    assert f"upstream.example ({address})" in str(refused.value)
    assert sockets.connections == []


async def test_a_rebinding_name_connects_only_where_it_was_checked() -> None:
    """Public when first resolved, private on the next lookup: the connection goes to the checked (public)
    address, and the next connection, resolved again, is refused."""
    sockets = RecordingSockets()
    resolver = ScriptedResolver({"rebind.example": ["93.184.216.34", "10.0.0.5"]})
    outbound = Outbound(OutboundPolicy(), resolver, sockets)
    with pytest.raises(aiohttp.ClientConnectorError):
        await fetch(outbound, "http://rebind.example/")
    assert sockets.connections == ["93.184.216.34"]
    with pytest.raises(OutboundRefused):
        await fetch(outbound, "http://rebind.example/")
    assert sockets.connections == ["93.184.216.34"]  # never the private address
    assert resolver.lookups == ["rebind.example", "rebind.example"]  # one lookup per connection, no cache


async def test_a_redirect_to_an_internal_address_is_refused() -> None:
    """An allowed (loopback) server redirects to the metadata address: the redirect is refused before any
    connection to it. Only loopback connections are real here; any other is recorded and failed."""
    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")

    application = web.Application()
    application.router.add_get("/", redirect)
    sockets = RecordingSockets()

    def loopback_only(addr_info: Any) -> socket.socket:
        if addr_info[4][0] != "127.0.0.1":
            return sockets(addr_info)
        return socket.socket(addr_info[0], addr_info[1], addr_info[2])

    async with serving(application) as port:
        with pytest.raises(OutboundRefused) as refused:
            await fetch(Outbound(OutboundPolicy.from_entries(["127.0.0.1"]), None, loopback_only),
                        f"http://127.0.0.1:{port}/")
    assert "cloud metadata" in str(refused.value)
    assert sockets.connections == []


@pytest.mark.parametrize(("allow", "url", "resolved"), [
    (["127.0.0.1"], "http://127.0.0.1:9/", None),
    (["10.0.0.0/8"], "http://internal.example/", "10.2.3.4"),
    (["internal.example"], "http://internal.example/", "192.168.1.1"),
])
async def test_the_allow_list_opens_hosts_and_networks(allow: list[str], url: str, resolved: str | None) -> None:
    sockets = RecordingSockets()
    resolver = ScriptedResolver({"internal.example": [resolved or "0.0.0.0"]})
    with pytest.raises(aiohttp.ClientConnectorError) as failed:
        await fetch(Outbound(OutboundPolicy.from_entries(allow), resolver, sockets), url)
    assert not isinstance(failed.value, OutboundRefused)
    assert sockets.connections == [resolved or "127.0.0.1"]  # it was let through to the (recording) connector


def test_an_allow_listed_network_does_not_open_its_neighbours() -> None:
    policy = OutboundPolicy.from_entries(["10.1.0.0/16"])
    assert policy.refusal("a", "10.1.9.9") is None
    assert policy.refusal("a", "10.2.0.1") is not None
    assert policy.refusal("a", "93.184.216.34") is None
