"""Outbound safety: every URL Warden fetches on someone's behalf is checked against internal address ranges.

Admins and users hand Warden URLs (an upstream server, and through it OAuth metadata, registration and token
endpoints). Fetched blindly, such a URL reaches what only Warden can reach: loopback services, the private
network, a cloud's metadata endpoint. The check runs where the connection is made: aiohttp asks this resolver
for the host's addresses, every address is checked, and the connection goes to exactly those addresses — so
a name that resolved to a public address when checked cannot resolve again to a private one when connected
(DNS rebinding). The allow-list opens specific hosts or networks (a local upstream, the tests' loopback).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from broker.kernel.errors import FieldError, InvalidInput

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
SocketFactory = Callable[[tuple[int, int, int, str, tuple[object, ...]]], socket.socket]
# Cloud metadata services, named even where a broader range already covers them, so the refusal says why.
_METADATA = (ipaddress.ip_network("169.254.169.254/32"), ipaddress.ip_network("fd00:ec2::254/128"),
             ipaddress.ip_network("100.100.100.200/32"))


class OutboundRefused(aiohttp.ClientConnectionError):
    """A URL whose host is, or resolves to, an address Warden does not fetch on anyone's behalf.

    An aiohttp connection error, so every client path already treats it as "could not connect"; its message
    says which address and how to open it."""


class Resolver(Protocol):
    """Name resolution, injectable so tests decide what a name resolves to without a DNS server."""

    async def resolve(self, host: str, port: int, family: socket.AddressFamily) -> list[ResolveResult]: ...


@dataclass(frozen=True, slots=True)
class OutboundPolicy:
    """Which hosts and networks are open despite being internal (``security.outbound_allow``)."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[Network, ...] = ()

    @classmethod
    def from_entries(cls, entries: Sequence[str]) -> OutboundPolicy:
        """Entries are host names (``mcp.internal``), addresses (``127.0.0.1``) or networks (``10.0.0.0/8``)."""
        hosts, networks = set(), []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                hosts.add(entry.strip().lower().rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def refusal(self, host: str, address: str) -> str | None:
        """Why ``host`` may not be reached at ``address``; None when it may."""
        if host.lower().rstrip(".") in self.hosts:
            return None
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in network for network in self.networks):
            return None
        kind = _internal_kind(ip)
        if kind is None:
            return None
        shown = host if host == address else f"{host} ({address})"
        return (f"{shown} is {kind}; Warden does not connect there on anyone's behalf unless"
                f" security.outbound_allow lists it")

    def check_literal(self, url: str) -> None:
        """Refuse a URL whose host is itself an internal address, before anything is sent (aiohttp connects
        to an address literal without asking the resolver; names are checked when they are resolved)."""
        host = urlsplit(url).hostname or ""
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return
        reason = self.refusal(host, host)
        if reason is not None:
            raise OutboundRefused(reason)


def _internal_kind(ip: Address) -> str | None:
    if any(ip in network for network in _METADATA):
        return "a cloud metadata address"
    if ip.is_unspecified:
        return "not a public address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_private:
        return "a private address"
    if ip.is_multicast or ip.is_reserved or not ip.is_global:
        return "not a public address"
    return None


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, refusing internal addresses; aiohttp connects to exactly what it returns."""

    def __init__(self, policy: OutboundPolicy, resolver: Resolver | None = None) -> None:
        self._policy = policy
        self._inner: Resolver = resolver or DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            reason = self._policy.refusal(host, result["host"])
            if reason is not None:
                raise OutboundRefused(reason)
        return results

    async def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            await close()


@dataclass(frozen=True, slots=True)
class Outbound:
    """What makes guarded aiohttp connections: the policy, and (for tests) the resolver and the socket
    factory, which a test replaces with one that records where a connection would go and sends nothing."""

    policy: OutboundPolicy = OutboundPolicy()
    resolver: Resolver | None = None
    socket_factory: SocketFactory | None = None

    async def check(self, url: str) -> None:
        """Refuse ``url`` now if its host is, or currently resolves to, an internal address: an early, clear
        answer for whoever registers it (connections are checked again when made). A name that does not
        resolve yet is left to the connection."""
        self.policy.check_literal(url)
        host = urlsplit(url).hostname or ""
        try:
            await GuardedResolver(self.policy, self.resolver).resolve(host, 0, socket.AF_UNSPEC)
        except OutboundRefused:
            raise
        except OSError:
            pass

    async def check_field(self, url: str | None, field: str) -> None:
        """``check`` for a URL given in a request body: refused as invalid input naming ``field``."""
        if url is None:
            return
        try:
            await self.check(url)
        except OutboundRefused as exc:
            raise InvalidInput("this URL is not reachable by Warden", [FieldError(field, str(exc))]) from exc

    def session(self, limit: int = 100, timeout: float | None = 15.0, auto_decompress: bool = True
                ) -> aiohttp.ClientSession:
        """A guarded aiohttp session: every request (redirects included) is checked, by address literal before
        it is sent and by resolved address when connected. No DNS cache: each connection is resolved,
        checked and pinned afresh."""
        connector = aiohttp.TCPConnector(limit=limit, use_dns_cache=False,
                                         resolver=GuardedResolver(self.policy, self.resolver),
                                         socket_factory=self.socket_factory)

        async def literal_hosts(request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
                                ) -> aiohttp.ClientResponse:
            self.policy.check_literal(str(request.url))
            return await handler(request)

        return aiohttp.ClientSession(connector=connector, middlewares=(literal_hosts,),
                                     timeout=aiohttp.ClientTimeout(total=timeout), auto_decompress=auto_decompress)
